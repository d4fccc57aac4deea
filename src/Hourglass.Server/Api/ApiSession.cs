using System.Globalization;
using System.Text;
using System.Threading.RateLimiting;
using Hourglass.Cycles;
using Hourglass.Storage;
using Hourglass.Tenancy;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Server.Api;

/// <summary>
/// One request's database session: one transaction with the caller's <c>role</c> and <c>request.jwt.claims</c> set
/// as PostgREST sets them, so row-level security — not a filter the handler might forget — decides what the
/// request sees and writes. Committed when the handler succeeds, rolled back otherwise.
/// </summary>
internal sealed class ApiSession(NpgsqlConnection connection, NpgsqlTransaction transaction, ApiCaller caller)
{
    public NpgsqlConnection Connection { get; } = connection;

    public NpgsqlTransaction Transaction { get; } = transaction;

    public ApiCaller Caller { get; } = caller;

    public NpgsqlCommand Command(string sql, params object?[] parameters) => StoreReads.Command(Connection, Transaction, sql, parameters);

    /// <summary>A JSON text from a query returning one json value (e.g. <c>json_agg</c>), or null when it returned none.</summary>
    public async Task<string?> JsonAsync(string sql, CancellationToken cancellationToken, params object?[] parameters)
    {
        await using var command = Command(sql, parameters);
        return await command.ExecuteScalarAsync(cancellationToken) is string json ? json : null;
    }

    /// <summary>Whether the caller may see the tenant: under RLS another tenant's row does not exist for them.</summary>
    public async Task<bool> CanSeeTenantAsync(Guid tenantId, CancellationToken cancellationToken)
    {
        return await TenancyStore.TenantVisibleAsync(Connection, Transaction, tenantId, cancellationToken);
    }

    /// <summary>
    /// Null when the caller's role in the tenant has <paramref name="capability"/> (docs/schema.md, "Roles and
    /// capabilities"; the service role has every one), else a 403 naming the role, the capability and the roles that
    /// have it. The database checks the same capability again in every function a route calls: this is for routes
    /// that act through the service role (settings, policies, runs) and for a clear answer before any work.
    /// </summary>
    public async Task<IResult?> RequireAsync(Guid tenantId, string capability, CancellationToken cancellationToken)
    {
        var (has, role, holders) = await TenancyStore.CapabilityAsync(Connection, Transaction, tenantId, capability, cancellationToken);
        if (has)
        {
            return null;
        }

        role ??= "none";
        holders ??= "none";
        return Forbidden($"your role '{role}' lacks the capability '{capability}'; roles that have it: {holders}");
    }

    public static IResult Forbidden(string detail) =>
        Results.Problem(title: "Forbidden", detail: detail, statusCode: StatusCodes.Status403Forbidden, type: "https://hourglass.dev/problems/forbidden");

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
            RateLimitLease? batch = null;
            if (http.Items[TenantKey] is Guid tenantId)
            {
                if (!await session.CanSeeTenantAsync(tenantId, http.RequestAborted))
                {
                    await transaction.RollbackAsync(http.RequestAborted);
                    return NotFound("the tenant");
                }

                // Only now, the caller being a member, does the request count against the tenant (ApiRateLimits); a
                // batch was admitted before its body was read (AdmitBatchAsync) and counted there.
                if (http.Items[AdmittedKey] is null)
                {
                    var (rejected, slot) = await TenantLimitAsync(http, tenantId);
                    if (rejected is not null)
                    {
                        await transaction.RollbackAsync(http.RequestAborted);
                        return rejected;
                    }

                    batch = slot;
                }
            }

            using var batchSlot = batch;
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
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.InsufficientPrivilege && http.Items[TenantKey] is Guid)
        {
            // The tenant check passed, so the caller is a member: a refusal now is their role lacking a capability
            // (assert_tenant_access says which), not a tenant they cannot see.
            await transaction.RollbackAsync(CancellationToken.None);
            return Forbidden(ex.MessageText);
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

    private const string AdmittedKey = "Hourglass.BatchAdmitted";

    /// <summary>
    /// A batch request (POST …/touches, …/events) of a member is admitted before its body is read: the tenant's request
    /// budget and one of its batch slots are taken here (held until the response is done), so a batch over the limit is
    /// a 429 that costs neither reading nor parsing its megabytes. Membership is checked first, in a short transaction
    /// as the caller: for anyone else this does nothing, and the request goes on to its 404 (or its 400) as any other.
    /// </summary>
    public static async Task<IResult?> AdmitBatchAsync(NpgsqlDataSource dataSource, HttpContext http, ApiCaller caller, Guid tenantId)
    {
        await using (var connection = await dataSource.OpenConnectionAsync(http.RequestAborted))
        await using (var transaction = await DbSession.BeginAsync(connection, caller.Role, caller.Claims, http.RequestAborted))
        {
            var member = await new ApiSession(connection, transaction, caller).CanSeeTenantAsync(tenantId, http.RequestAborted);
            await transaction.RollbackAsync(http.RequestAborted);
            if (!member)
            {
                return null;
            }
        }

        var (rejected, slot) = await TenantLimitAsync(http, tenantId);
        if (slot is not null)
        {
            http.Response.RegisterForDispose(slot);
        }

        http.Items[AdmittedKey] = true;
        return rejected;
    }

    // The tenant's request budget and, on a batch route, one of its batch slots (held until the request ends): a 429
    // when either is exhausted.
    private static async Task<(IResult? Rejected, RateLimitLease? Batch)> TenantLimitAsync(HttpContext http, Guid tenantId)
    {
        var limits = http.RequestServices.GetRequiredService<ApiTenantLimits>();
        using (var request = limits.AcquireRequest(tenantId))
        {
            if (!request.IsAcquired)
            {
                return (ApiRateLimits.TooMany(http, $"more than {limits.Settings.TenantPerSecond} requests a second for this tenant " +
                                                     $"({ApiRateLimitSettings.TenantVariable}); retry after a second"), null);
            }
        }

        if (http.GetEndpoint()?.Metadata.GetMetadata<ApiBatchRoute>() is null)
        {
            return (null, null);
        }

        var slot = limits.AcquireBatch(tenantId);
        if (!slot.IsAcquired)
        {
            slot.Dispose();
            return (ApiRateLimits.TooMany(http, $"this tenant already has {limits.Settings.TenantBatches} batch request(s) running " +
                                                 $"({ApiRateLimitSettings.BatchesVariable}); retry when one has finished"), null);
        }

        // Tests hold a batch here to overlap others with it deterministically (HOURGLASS_FAILPOINTS).
        await Failpoints.HitAsync("api.batch_slot_held", http.RequestAborted);
        return (null, slot);
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
