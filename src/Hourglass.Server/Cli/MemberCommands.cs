using System.CommandLine;
using System.Globalization;
using Hourglass.Tenancy;
using Microsoft.Extensions.Logging;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Server.Cli;

/// <summary>
/// <c>hourglass members list|set|remove</c> and <c>hourglass roles list|set|remove</c>: who belongs to a tenant, with
/// which role, and what each role may do (docs/schema.md, "Roles and capabilities"). Changes go through the database's
/// own functions (set_tenant_member, set_tenant_role, …), so the CLI keeps the rules a signed-in owner meets (a tenant
/// keeps its last owner; capabilities are from the known list).
/// </summary>
internal static class MemberCommands
{
    public static IEnumerable<Command> Build(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        yield return new Command("members", "A tenant's members and their roles.")
        {
            ListMembers(options, loggers), SetMember(options, loggers), RemoveMember(options, loggers),
        };
        yield return new Command("roles", "A tenant's roles: the defaults and a host CRM's own names, each with its capabilities.")
        {
            ListRoles(options, loggers), SetRole(options, loggers), RemoveRole(options, loggers),
        };
    }

    private static Option<string> TenantOption() => new("--tenant") { Description = "The tenant: its id, or its exact name.", Required = true };

    private static Option<Guid> UserOption() => new("--user") { Description = "The member's user id (auth.users.id on Supabase).", Required = true };

    private static Option<string> RoleOption(string description) => new("--role") { Description = description, Required = true };

    private static Command ListMembers(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var tenant = TenantOption();
        var command = new Command("list", "List the tenant's members, with each one's role and what it may do.") { tenant };
        command.SetAction((parse, cancellationToken) => WithTenantAsync(parse, options, loggers, tenant, cancellationToken, async (dataSource, tenantId) =>
        {
            var rows = (await TenancyStore.MembersAsync(dataSource, tenantId, cancellationToken))
                .Select(m => new[] { m.UserId.ToString(), m.Role, m.Capabilities, m.Since.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture) })
                .ToList();

            Print(["user", "role", "capabilities", "since"], rows, "The tenant has no members.");
        }));
        return command;
    }

    private static Command SetMember(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var tenant = TenantOption();
        var user = UserOption();
        var role = RoleOption("One of the tenant's roles ('hourglass roles list').");
        var command = new Command("set", "Add a member, or change a member's role.") { tenant, user, role };
        command.SetAction((parse, cancellationToken) => WithTenantAsync(parse, options, loggers, tenant, cancellationToken, async (dataSource, tenantId) =>
        {
            await using var set = Command(dataSource, TenancyStore.SetMemberSql, tenantId, parse.GetValue(user), parse.GetValue(role)!);
            var outcome = (string)(await set.ExecuteScalarAsync(cancellationToken))!;
            Console.WriteLine($"Member {parse.GetValue(user)} {outcome}: role {parse.GetValue(role)}.");
        }));
        return command;
    }

    private static Command RemoveMember(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var tenant = TenantOption();
        var user = UserOption();
        var command = new Command("remove", "Remove a member from the tenant (a tenant keeps its last owner).") { tenant, user };
        command.SetAction((parse, cancellationToken) => WithTenantAsync(parse, options, loggers, tenant, cancellationToken, async (dataSource, tenantId) =>
        {
            await using var remove = Command(dataSource, TenancyStore.RemoveMemberSql, tenantId, parse.GetValue(user));
            if (await remove.ExecuteScalarAsync(cancellationToken) is not true)
            {
                throw new HourglassException($"--user: {parse.GetValue(user)} is not a member of this tenant");
            }

            Console.WriteLine($"Member {parse.GetValue(user)} removed.");
        }));
        return command;
    }

    private static Command ListRoles(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var tenant = TenantOption();
        var command = new Command("list", "List the tenant's roles, their capabilities and how many members have each.") { tenant };
        command.SetAction((parse, cancellationToken) => WithTenantAsync(parse, options, loggers, tenant, cancellationToken, async (dataSource, tenantId) =>
        {
            var rows = (await TenancyStore.RolesAsync(dataSource, tenantId, cancellationToken))
                .Select(r => new[] { r.Role, r.Members.ToString(CultureInfo.InvariantCulture), r.Capabilities, r.Description })
                .ToList();

            Print(["role", "members", "capabilities", "description"], rows, "The tenant has no roles.");
        }));
        return command;
    }

    private static Command SetRole(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var tenant = TenantOption();
        var role = RoleOption("The role's name: a default (admin, manager, …) or a host CRM's own (e.g. sales_rep).");
        var capabilities = new Option<string>("--capabilities")
        {
            Description = "Comma-separated: read, edit_crm, record_touches, ingest_events, work_any_card, approve, override_credit, " +
                          "resolve_exceptions, run_cycles, manage_settings, manage_members ('read' is always added).",
            Required = true,
        };
        var description = new Option<string?>("--description") { Description = "What the role is for, in a few words." };
        var command = new Command("set", "Create a role or change what it may do.") { tenant, role, capabilities, description };
        command.SetAction((parse, cancellationToken) => WithTenantAsync(parse, options, loggers, tenant, cancellationToken, async (dataSource, tenantId) =>
        {
            var list = parse.GetValue(capabilities)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            await using var set = Command(dataSource, TenancyStore.SetRoleSql, tenantId, parse.GetValue(role)!, list,
                new NpgsqlParameter { Value = (object?)parse.GetValue(description) ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
            var outcome = (string)(await set.ExecuteScalarAsync(cancellationToken))!;
            Console.WriteLine($"Role {parse.GetValue(role)} {outcome}.");
        }));
        return command;
    }

    private static Command RemoveRole(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var tenant = TenantOption();
        var role = RoleOption("The role to remove; no member may have it.");
        var command = new Command("remove", "Remove a role no member has.") { tenant, role };
        command.SetAction((parse, cancellationToken) => WithTenantAsync(parse, options, loggers, tenant, cancellationToken, async (dataSource, tenantId) =>
        {
            await using var remove = Command(dataSource, TenancyStore.RemoveRoleSql, tenantId, parse.GetValue(role)!);
            if (await remove.ExecuteScalarAsync(cancellationToken) is not true)
            {
                throw new HourglassException($"--role: the tenant has no role '{parse.GetValue(role)}'");
            }

            Console.WriteLine($"Role {parse.GetValue(role)} removed.");
        }));
        return command;
    }

    private static async Task<int> WithTenantAsync(ParseResult parse, Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers,
        Option<string> tenant, CancellationToken cancellationToken, Func<NpgsqlDataSource, Guid, Task> action)
    {
        using var loggerFactory = loggers(parse);
        await using var target = await DatabaseTarget.OpenMigratedAsync(options(parse), loggerFactory, cancellationToken);
        var tenantId = await CycleCommands.ResolveTenantAsync(target.DataSource, parse.GetValue(tenant)!, cancellationToken);
        await action(target.DataSource, tenantId);
        return 0;
    }

    private static NpgsqlCommand Command(NpgsqlDataSource dataSource, string sql, params object[] parameters)
    {
        var command = dataSource.CreateCommand(sql);
        foreach (var parameter in parameters)
        {
            command.Parameters.Add(parameter as NpgsqlParameter ?? new NpgsqlParameter { Value = parameter });
        }

        return command;
    }

    private static void Print(string[] header, List<string[]> rows, string empty)
    {
        if (rows.Count == 0)
        {
            Console.WriteLine(empty);
            return;
        }

        var console = StatusCommand.CreateConsole();
        var table = StatusCommand.NewTable(header);
        foreach (var row in rows)
        {
            StatusCommand.AddRow(table, row);
        }

        console.Write(table);
        console.Profile.Out.Writer.Flush();
    }
}
