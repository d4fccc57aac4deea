using System.CommandLine;
using Hourglass.Engagement.Inbound;
using Hourglass.Engagement.Inbound.Providers;
using Hourglass.Engagement.Unsubscribe;
using Microsoft.Extensions.Logging;

namespace Hourglass.Server.Cli;

/// <summary>
/// <c>hourglass inbound set|list</c>: where a tenant's delivery events come from (inbound_sources; docs/inbound.md,
/// "Setting up a source"). As for channels, no secret is taken or stored: <c>--secret-ref</c> names the server's
/// environment variable holding the source's signing secret or verification key.
/// </summary>
internal static class InboundCommands
{
    public static IEnumerable<Command> Build(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        yield return new Command("inbound", "A tenant's inbound event sources: its signed webhooks (Hourglass's own format, Resend, SendGrid, Postmark) and its shared mailbox (IMAP).")
        {
            Set(options, loggers), List(options, loggers),
        };
    }

    private static Option<string> TenantOption() => new("--tenant") { Description = "The tenant: its id, or its exact name.", Required = true };

    private static Command Set(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var tenant = TenantOption();
        var source = new Option<string>("--source") { Description = $"{string.Join(", ", InboundProviders.All.Select(p => p.Source))}.", Required = true };
        var secretRef = new Option<string?>("--secret-ref")
        {
            Description = "The NAME of the server's environment variable holding the source's secret (hourglass, resend: the whsec_ signing " +
                          "secret; sendgrid: the verification key). The secret itself is never stored.",
        };
        var disable = new Option<bool>("--disable") { Description = "Switch the source off (its settings are kept; set it again to switch it on)." };
        var command = new Command("set", "Create or replace a tenant's webhook source and enable it, or --disable it.") { tenant, source, secretRef, disable };
        command.SetAction(async (parse, cancellationToken) =>
        {
            // Checked before the database is touched: a bad option writes nothing.
            var provider = Provider(parse.GetValue(source)!);
            var reference = parse.GetValue(secretRef);
            var off = parse.GetValue(disable);
            if (reference is not null)
            {
                ChannelCommands.CheckSecretRef(reference);
            }
            else if (!off)
            {
                throw new HourglassException($"--secret-ref: required: the name of the server's environment variable holding {provider.Secret}");
            }

            using var loggerFactory = loggers(parse);
            await using var target = await DatabaseTarget.OpenMigratedAsync(options(parse), loggerFactory, cancellationToken);
            var tenantId = await CycleCommands.ResolveTenantAsync(target.DataSource, parse.GetValue(tenant)!, cancellationToken);
            if (reference is null)
            {
                if (!await InboundStore.DisableSourceAsync(target.DataSource, tenantId, provider.Source, cancellationToken))
                {
                    throw new HourglassException($"--source: tenant {tenantId} has no {provider.Source} source (set one with --secret-ref)");
                }

                Console.WriteLine($"Tenant {tenantId}: {provider.Source} source disabled; its events are refused (404) until it is set again.");
                return 0;
            }

            var (created, previous) = await InboundStore.SetWebhookSourceAsync(target.DataSource, tenantId, provider.Source, reference, !off, cancellationToken);
            Console.WriteLine($"Tenant {tenantId}: {provider.Source} source {(created ? "created" : "replaced")} and {(off ? "disabled" : "enabled")}.");
            if (previous is not null && previous != reference)
            {
                Console.WriteLine($"Its secret was read from {previous}; it is now read from {reference}.");
            }

            Console.WriteLine($"Point {provider.Source} at {Url(tenantId, provider.Source)}");
            Console.WriteLine($"The server reads {provider.Secret} from its environment variable {reference}; set it wherever 'hourglass serve' runs.");
            return 0;
        });
        return command;
    }

    private static Command List(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var tenant = TenantOption();
        var command = new Command("list", "Show a tenant's inbound sources: id, enabled, the secret's variable, the URL to post to and the headers signed.") { tenant };
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var loggerFactory = loggers(parse);
            await using var target = await DatabaseTarget.OpenMigratedAsync(options(parse), loggerFactory, cancellationToken);
            var tenantId = await CycleCommands.ResolveTenantAsync(target.DataSource, parse.GetValue(tenant)!, cancellationToken);
            var sources = await InboundStore.SourcesAsync(target.DataSource, tenantId, cancellationToken);
            if (sources.Count == 0)
            {
                Console.WriteLine($"Tenant {tenantId} has no inbound sources; add one with 'hourglass inbound set'.");
                return 0;
            }

            var lines = new List<string[]> { new[] { "source", "id", "enabled", "secret ref", "url", "signed with" } };
            foreach (var row in sources)
            {
                var provider = InboundProviders.Find(row.Source);
                lines.Add([row.Source, row.Id.ToString("D"), row.Enabled ? "yes" : "no", row.SecretRef ?? "-",
                    provider is null ? "- (read from its mailbox)" : Url(tenantId, row.Source), provider is null ? "-" : string.Join(", ", provider.Headers)]);
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

    private static InboundProvider Provider(string source) => InboundProviders.Find(source.Trim())
        ?? throw new HourglassException($"--source: must be one of {string.Join(", ", InboundProviders.All.Select(p => p.Source))} (got '{source}')");

    // The server's public address when it is configured (HOURGLASS_PUBLIC_URL, as for unsubscribe links), else the path.
    private static string Url(Guid tenantId, string source) =>
        $"{Environment.GetEnvironmentVariable(UnsubscribeTokens.PublicUrlVariable)?.Trim().TrimEnd('/')}/inbound/{tenantId:D}/{source}";
}
