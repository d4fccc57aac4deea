using System.CommandLine;
using System.Globalization;
using Hourglass.Composition;
using Hourglass.Engagement.Inbound;
using Hourglass.Engagement.Inbound.Mailbox;
using Microsoft.Extensions.Logging;

namespace Hourglass.Server.Cli;

/// <summary>
/// <c>hourglass inbound mailbox set|list|poll|disable</c>: a tenant's shared mailbox, read over IMAP for replies and bounce
/// reports (docs/inbound.md, "Replies from a mailbox (IMAP)"). The password is never taken or stored: <c>--secret-ref</c>
/// names the worker's environment variable that holds it.
/// </summary>
internal static class MailboxCommands
{
    private static readonly string[] s_securities = ["auto", "starttls", "tls", "none"];

    /// <summary>
    /// Adds <c>mailbox</c> under the root's <c>inbound</c> command, creating that command when no other part made it yet
    /// (the webhook sources' <c>inbound set</c> lives beside it).
    /// </summary>
    public static void AddTo(RootCommand root, Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var inbound = root.Subcommands.FirstOrDefault(c => c.Name == "inbound");
        if (inbound is null)
        {
            inbound = new Command("inbound", "Where a tenant's delivery events and replies come from.");
            root.Subcommands.Add(inbound);
        }

        inbound.Subcommands.Add(new Command("mailbox", "A tenant's shared mailbox, read over IMAP for replies and bounce reports.")
        {
            Set(options, loggers), List(options, loggers), Poll(options, loggers), Disable(options, loggers),
        });
    }

    private static Command Set(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var tenant = new Option<string>("--tenant") { Description = "The tenant: its id, or its exact name.", Required = true };
        var host = new Option<string>("--imap-host") { Description = "The IMAP server's host name or IP address.", Required = true };
        var port = new Option<int>("--imap-port") { Description = "The IMAP server's port (993 TLS, 143 STARTTLS).", Required = true };
        var security = new Option<string?>("--imap-security") { Description = "tls (TLS on connect), starttls, none, or auto (default)." };
        var username = new Option<string>("--imap-username") { Description = "The login; its password is in --secret-ref.", Required = true };
        var mailbox = new Option<string?>("--imap-mailbox") { Description = "The folder to read (default INBOX)." };
        var secretRef = new Option<string>("--secret-ref")
        {
            Description = "The NAME of the worker's environment variable holding the mailbox password. The password itself is never stored.",
            Required = true,
        };
        var command = new Command("set", "Create or replace a tenant's mailbox, and enable it. Its position is kept when it is the same mailbox.")
        {
            tenant, host, port, security, username, mailbox, secretRef,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            // Everything is checked before the database is touched: a bad option writes nothing.
            var settings = Validate(parse.GetValue(host)!, parse.GetValue(port), parse.GetValue(security), parse.GetValue(username)!,
                parse.GetValue(mailbox), parse.GetValue(secretRef)!);
            using var loggerFactory = loggers(parse);
            await using var target = await DatabaseTarget.OpenMigratedAsync(options(parse), loggerFactory, cancellationToken);
            var tenantId = await CycleCommands.ResolveTenantAsync(target.DataSource, parse.GetValue(tenant)!, cancellationToken);
            await MailboxStore.SetAsync(target.DataSource, tenantId, settings, cancellationToken);
            Console.WriteLine($"Tenant {tenantId}: mailbox {settings.Username}@{settings.Host}:{settings.Port} ({settings.Security}), folder {settings.Mailbox}, " +
                              "set and enabled.");
            Console.WriteLine($"Workers read its password from their environment variable {settings.SecretRef}; set it wherever workers run.");
            return 0;
        });
        return command;
    }

    private static Command List(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var tenant = new Option<string?>("--tenant") { Description = "One tenant (id or exact name); without it, all tenants." };
        var command = new Command("list", "Show the mailboxes: where, enabled, position, last poll and its error.") { tenant };
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var loggerFactory = loggers(parse);
            await using var target = await DatabaseTarget.OpenMigratedAsync(options(parse), loggerFactory, cancellationToken);
            Guid? tenantId = parse.GetValue(tenant) is { } name ? await CycleCommands.ResolveTenantAsync(target.DataSource, name, cancellationToken) : null;
            var rows = await MailboxStore.ListAsync(target.DataSource, tenantId, cancellationToken);
            if (rows.Count == 0)
            {
                Console.WriteLine("No mailbox is set; add one with 'hourglass inbound mailbox set'.");
                return 0;
            }

            var lines = new List<string[]> { new[] { "tenant", "mailbox", "enabled", "secret ref", "position", "last poll", "last error" } };
            foreach (var m in rows)
            {
                lines.Add([
                    m.TenantId.ToString(), $"{m.Username}@{m.Host}:{m.Port}/{m.Mailbox} ({m.Security})", m.Enabled ? "yes" : "no", m.SecretRef,
                    m.UidValidity is { } validity ? string.Create(CultureInfo.InvariantCulture, $"{validity}:{m.LastUid ?? 0}") : "-",
                    m.LastPolledAt?.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture) ?? "never",
                    m.LastError ?? "-",
                ]);
            }

            var widths = Enumerable.Range(0, lines[0].Length).Select(c => lines.Max(l => l[c].Length)).ToArray();
            foreach (var line in lines)
            {
                Console.WriteLine(string.Join("  ", line.Select((cell, c) => c == line.Length - 1 ? cell : cell.PadRight(widths[c]))));
            }

            return 0;
        });
        return command;
    }

    private static Command Poll(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var tenant = new Option<string?>("--tenant") { Description = "One tenant (id or exact name); without it, every enabled mailbox." };
        var command = new Command("poll", "Poll the mailboxes once now, as a worker does every interval. Exits 1 when a poll failed.") { tenant };
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var loggerFactory = loggers(parse);
            await using var target = await DatabaseTarget.OpenMigratedAsync(options(parse), loggerFactory, cancellationToken);
            Guid? tenantId = parse.GetValue(tenant) is { } name ? await CycleCommands.ResolveTenantAsync(target.DataSource, name, cancellationToken) : null;
            var reader = CycleComposition.CreateMailboxReader(target.DataSource, ProductClock.Time, loggers: loggerFactory,
                classifier: Narrative.ReplyClassifierFromEnvironment(ProductClock.Time, loggerFactory));
            var results = await reader.PollAllAsync(tenantId, cancellationToken);
            if (results.Count == 0)
            {
                Console.WriteLine(tenantId is null ? "No mailbox is enabled." : $"Tenant {tenantId} has no enabled mailbox.");
                return 0;
            }

            foreach (var r in results)
            {
                Console.WriteLine(r.Status switch
                {
                    MailboxPollResult.Busy => $"Tenant {r.TenantId}: another worker is polling this mailbox now; nothing done.",
                    _ => $"Tenant {r.TenantId}: {r.Status}: {r.Recorded} recorded, {r.Duplicates} seen before, {r.Skipped} skipped" +
                         (r.Error is null ? "." : $"; {r.Error}"),
                });
            }

            return results.Any(r => r.Status == MailboxPollResult.Failed) ? 1 : 0;
        });
        return command;
    }

    private static Command Disable(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var tenant = new Option<string>("--tenant") { Description = "The tenant: its id, or its exact name.", Required = true };
        var command = new Command("disable", "Stop polling a tenant's mailbox (its settings and position are kept; 'set' enables it again).") { tenant };
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var loggerFactory = loggers(parse);
            await using var target = await DatabaseTarget.OpenMigratedAsync(options(parse), loggerFactory, cancellationToken);
            var tenantId = await CycleCommands.ResolveTenantAsync(target.DataSource, parse.GetValue(tenant)!, cancellationToken);
            if (!await MailboxStore.DisableAsync(target.DataSource, tenantId, cancellationToken))
            {
                throw new HourglassException($"--tenant: tenant {tenantId} has no mailbox");
            }

            Console.WriteLine($"Tenant {tenantId}: mailbox disabled.");
            return 0;
        });
        return command;
    }

    /// <summary>Checks <c>inbound mailbox set</c>'s options, naming the first bad one; returns the settings to write.</summary>
    internal static MailboxSettings Validate(string host, int port, string? security, string username, string? mailbox, string secretRef)
    {
        host = host.Trim();
        if (host.Length == 0 || Uri.CheckHostName(host) == UriHostNameType.Unknown)
        {
            throw new HourglassException($"--imap-host: '{host}' is not a host name or IP address");
        }

        if (port is < 1 or > 65535)
        {
            throw new HourglassException($"--imap-port: must be between 1 and 65535 (got {port})");
        }

        security = security?.Trim().ToLowerInvariant() ?? "auto";
        if (!s_securities.Contains(security))
        {
            throw new HourglassException($"--imap-security: must be one of {string.Join(", ", s_securities)} (got '{security}')");
        }

        if (string.IsNullOrWhiteSpace(username))
        {
            throw new HourglassException("--imap-username: must not be empty");
        }

        mailbox = mailbox?.Trim() is { Length: > 0 } folder ? folder : "INBOX";
        // The same rule as the column's CHECK: an environment variable's name, never the password itself.
        var isName = secretRef.Length > 0 && (char.IsAsciiLetter(secretRef[0]) || secretRef[0] == '_')
                     && secretRef.All(c => char.IsAsciiLetterOrDigit(c) || c == '_');
        if (!isName)
        {
            // Never echo the value: it may be the password.
            throw new HourglassException("--secret-ref: give the NAME of the environment variable that holds the password " +
                                         "(letters, digits and _, e.g. ACME_MAILBOX_PASSWORD), not the password itself");
        }

        return new MailboxSettings(host, port, security, username.Trim(), mailbox, secretRef);
    }
}
