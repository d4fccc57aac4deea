using System.Globalization;
using System.Text;
using Hourglass.Storage;
using Microsoft.AspNetCore.Http;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Server.Api;

/// <summary>
/// One request's database session: one transaction with the caller's <c>role</c> and <c>request.jwt.claims</c> set
/// as PostgREST sets them, so row-level security — not a filter the handler might forget — decides what the
/// request sees and writes. Committed when the handler succeeds, rolled back otherwise.
/// </summary>
public sealed class ApiSession(NpgsqlConnection connection, NpgsqlTransaction transaction, ApiCaller caller)
{
    public NpgsqlConnection Connection { get; } = connection;

    public NpgsqlTransaction Transaction { get; } = transaction;

    public ApiCaller Caller { get; } = caller;

    public NpgsqlCommand Command(string sql, params object?[] parameters)
    {
        var command = new NpgsqlCommand(sql, Connection, Transaction);
        foreach (var parameter in parameters)
        {
            command.Parameters.Add(parameter switch
            {
                null => new NpgsqlParameter { Value = DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text },
                NpgsqlParameter p => p,
                _ => new NpgsqlParameter { Value = parameter },
            });
        }

        return command;
    }

    /// <summary>A JSON text from a query returning one json value (e.g. <c>json_agg</c>), or null when it returned none.</summary>
    public async Task<string?> JsonAsync(string sql, CancellationToken cancellationToken, params object?[] parameters)
    {
        await using var command = Command(sql, parameters);
        return await command.ExecuteScalarAsync(cancellationToken) is string json ? json : null;
    }

    /// <summary>Whether the caller may see the tenant: under RLS another tenant's row does not exist for them.</summary>
    public async Task<bool> CanSeeTenantAsync(Guid tenantId, CancellationToken cancellationToken)
    {
        await using var command = Command("select exists (select 1 from public.tenants where id = $1)", tenantId);
        return await command.ExecuteScalarAsync(cancellationToken) is true;
    }

    /// <summary>Where a tenant route leaves its tenant id for <see cref="RunAsync"/> to check.</summary>
    public const string TenantKey = "Hourglass.TenantId";

    public static async Task<IResult> RunAsync(NpgsqlDataSource dataSource, HttpContext http, Func<ApiSession, Task<IResult>> handler)
    {
        var caller = (ApiCaller)http.Items[nameof(ApiCaller)]!;
        await using var connection = await dataSource.OpenConnectionAsync(http.RequestAborted);
        await using var transaction = await DbSession.BeginAsync(connection, caller.Role, caller.Claims, http.RequestAborted);
        try
        {
            var session = new ApiSession(connection, transaction, caller);
            if (http.Items[TenantKey] is Guid tenantId && !await session.CanSeeTenantAsync(tenantId, http.RequestAborted))
            {
                await transaction.RollbackAsync(http.RequestAborted);
                return NotFound("the tenant");
            }

            var result = await handler(session);
            if (result is IStatusCodeHttpResult { StatusCode: >= 400 })
            {
                await transaction.RollbackAsync(http.RequestAborted);
            }
            else
            {
                await transaction.CommitAsync(http.RequestAborted);
            }

            return result;
        }
        catch (PostgresException ex)
        {
            await transaction.RollbackAsync(CancellationToken.None);
            return Problem(ex);
        }
        catch (HourglassException ex)
        {
            await transaction.RollbackAsync(CancellationToken.None);
            return Results.Problem(title: "Invalid request", detail: ex.Message, statusCode: StatusCodes.Status400BadRequest,
                type: "https://hourglass.dev/problems/invalid-request");
        }
    }

    /// <summary>
    /// A database refusal as an RFC 9457 problem: another tenant's data, or data the caller may not touch, is "not
    /// found" (404) — never "forbidden", which would confirm it exists; bad arguments are 400; a state that does not
    /// allow the change (already decided, expired) is 409.
    /// </summary>
    public static IResult Problem(PostgresException ex) => ex.SqlState switch
    {
        PostgresErrorCodes.InsufficientPrivilege or "P0002" => NotFound(),
        // Class 22 is "data exception" (PostgreSQL, Appendix A): every one of them — a value out of range, text the
        // encoding cannot hold (22021), a NUL in jsonb (22P05), a bad date — is caused by the input, never the server.
        var state when state.StartsWith("22", StringComparison.Ordinal)
            => Results.Problem(title: "Invalid request", detail: ex.MessageText, statusCode: StatusCodes.Status400BadRequest,
                type: "https://hourglass.dev/problems/invalid-request"),
        PostgresErrorCodes.NullValueNotAllowed or PostgresErrorCodes.ForeignKeyViolation
            or PostgresErrorCodes.CheckViolation or PostgresErrorCodes.ProgramLimitExceeded
            => Results.Problem(title: "Invalid request", detail: ex.MessageText, statusCode: StatusCodes.Status400BadRequest,
                type: "https://hourglass.dev/problems/invalid-request"),
        PostgresErrorCodes.ObjectNotInPrerequisiteState or PostgresErrorCodes.UniqueViolation
            => Results.Problem(title: "Conflict", detail: ex.MessageText, statusCode: StatusCodes.Status409Conflict,
                type: "https://hourglass.dev/problems/conflict"),
        _ => throw new InvalidOperationException($"database error {ex.SqlState}", ex),
    };

    public static IResult NotFound(string what = "the resource") =>
        Results.Problem(title: "Not found", detail: $"{what} does not exist, or you are not a member of its tenant",
            statusCode: StatusCodes.Status404NotFound, type: "https://hourglass.dev/problems/not-found");

    public static IResult Invalid(string field, string problem) => Invalid(new Dictionary<string, string[]> { [field] = [problem] });

    /// <summary>A 400 validation problem: <c>errors</c> maps each field to what is wrong with it, and <c>detail</c> says it in one line.</summary>
    public static IResult Invalid(IDictionary<string, string[]> errors, string? detail = null, string title = "Invalid request") =>
        Results.ValidationProblem(errors, title: title, type: "https://hourglass.dev/problems/validation",
            detail: string.Join("; ", errors.SelectMany(e => e.Value.Select(problem => $"{e.Key}: {problem}"))) + (detail is null ? "" : $" — {detail}"));

    public static IResult Json(string? json) => Results.Text(json ?? "null", "application/json", Encoding.UTF8);

    /// <summary>A page cursor: the last row's (created_at, id), opaque to clients.</summary>
    public static string Cursor(DateTimeOffset at, Guid id) =>
        Convert.ToBase64String(Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{at.UtcTicks}|{id}")));

    public static bool TryCursor(string? cursor, out DateTimeOffset at, out Guid id) => ReadCursor(cursor, out at, out id) is null;

    /// <summary>Reads a cursor; the answer is what is wrong with it (for the <c>cursor</c> parameter's error), or null.</summary>
    public static string? ReadCursor(string? cursor, out DateTimeOffset at, out Guid id)
    {
        // No cursor: the start, after everything (a date past any row; not 'infinity', which not every driver maps).
        at = new DateTimeOffset(9999, 12, 31, 0, 0, 0, TimeSpan.Zero);
        id = Guid.Empty;
        if (string.IsNullOrEmpty(cursor))
        {
            return null;
        }

        const string NotOurs = "is not a cursor this API gave out: pass next_cursor back as it came";
        string[] parts;
        try
        {
            parts = Encoding.UTF8.GetString(Convert.FromBase64String(cursor)).Split('|');
        }
        catch (FormatException)
        {
            return NotOurs;
        }

        if (parts.Length != 2 || !long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var ticks) || !Guid.TryParse(parts[1], out id))
        {
            return NotOurs;
        }

        // Checked before a DateTimeOffset is made of it: ticks past year 9999 would throw, year 1 would reach the
        // database as -infinity. Every cursor the API gives out is a row's created_at, within the bounds.
        if (!TimeBounds.ContainsTicks(ticks))
        {
            return $"{NotOurs} (its time is outside the accepted range, {TimeBounds.Range})";
        }

        at = new DateTimeOffset(ticks, TimeSpan.Zero);
        return null;
    }
}
