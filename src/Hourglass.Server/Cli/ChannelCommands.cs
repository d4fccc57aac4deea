using System.CommandLine;
using System.Globalization;
using Hourglass.Engagement;
using Hourglass.Engagement.Outbox;
using Microsoft.Extensions.Logging;

namespace Hourglass.Server.Cli;

/// <summary>
/// <c>hourglass channels set|list|disable</c>: where a tenant's messages leave (message_channels). Secrets are never
/// taken or stored: <c>--secret-ref</c> names the worker's environment variable that holds one (docs/outbox.md).
/// </summary>
internal static class ChannelCommands
{
    private static readonly string[] s_securities = ["auto", "starttls", "tls", "none"];

    public static IEnumerable<Command> Build(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        yield return new Command("channels", "A tenant's message channels: its signed webhook and its SMTP relay.")
        {
            Set(options, loggers), List(options, loggers), Disable(options, loggers),
        };
    }

    /// <summary>A channel row as <c>channels set</c> writes it, after validation.</summary>
    internal sealed record ChannelRow(
        string Channel, string? WebhookUrl, string? SmtpHost, int? SmtpPort, string SmtpSecurity, string? SmtpUsername, string? SmtpFrom,
        string? SecretRef, string? SmtpTlsPin);

    private static Option<string> TenantOption() => new("--tenant") { Description = "The tenant: its id, or its exact name.", Required = true };

    private static Option<string> ChannelOption() => new("--channel") { Description = "webhook or email.", Required = true };

    private static Command Set(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var tenant = TenantOption();
        var channel = ChannelOption();
        var url = new Option<string?>("--url") { Description = "webhook: where messages are POSTed; https (http only for a loopback host)." };
        var secretRef = new Option<string?>("--secret-ref")
        {
            Description = "The NAME of the worker's environment variable holding the secret (webhook: the whsec_ signing secret; " +
                          "email: the SMTP password). The secret itself is never stored.",
        };
        var host = new Option<string?>("--smtp-host") { Description = "email: the relay's host name or IP address." };
        var port = new Option<int?>("--smtp-port") { Description = "email: the relay's port (587 STARTTLS, 465 TLS, 25)." };
        var security = new Option<string?>("--smtp-security") { Description = "email: starttls, tls (TLS on connect), none, or auto (default)." };
        var username = new Option<string?>("--smtp-username") { Description = "email: the login; its password is in --secret-ref." };
        var from = new Option<string?>("--smtp-from") { Description = "email: the From address, one mailbox (agent@acme.example)." };
        var pin = new Option<string?>("--smtp-tls-pin")
        {
            Description = "email: trust exactly this relay certificate, by its SHA-256 fingerprint (64 hex digits, colons allowed), " +
                          "for a self-signed or private-CA relay. Without it the certificate is validated as usual.",
        };
        var command = new Command("set", "Create or replace a tenant's webhook or email channel, and enable it.")
        {
            tenant, channel, url, secretRef, host, port, security, username, from, pin,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            // Everything is checked before the database is touched: a bad option writes nothing.
            var row = Validate(parse.GetValue(channel)!, parse.GetValue(url), parse.GetValue(secretRef), parse.GetValue(host), parse.GetValue(port),
                parse.GetValue(security), parse.GetValue(username), parse.GetValue(from), parse.GetValue(pin));
            using var loggerFactory = loggers(parse);
            await using var target = await DatabaseTarget.OpenMigratedAsync(options(parse), loggerFactory, cancellationToken);
            var tenantId = await CycleCommands.ResolveTenantAsync(target.DataSource, parse.GetValue(tenant)!, cancellationToken);
            // A replace: the channel becomes exactly what this command says. The optional settings the previous one had and
            // this one leaves out (a TLS pin, a login, a secret) are read in the same statement (the CTE sees the row as it
            // was) and named below, so none is dropped without a word.
            var dropped = await EngagementStore.ReplaceMessageChannelAsync(target.DataSource, tenantId, new(row.Channel, Enabled: true,
                row.WebhookUrl, row.SmtpHost, row.SmtpPort, row.SmtpSecurity, row.SmtpUsername, row.SmtpFrom, row.SecretRef, row.SmtpTlsPin),
                cancellationToken);
            Console.WriteLine($"Tenant {tenantId}: {row.Channel} channel set and enabled ({Destination(row)}).");
            if (dropped.Length > 0)
            {
                Console.WriteLine($"This replaced the channel's previous settings: {string.Join(", ", dropped)} no longer set (give it again to keep it).");
            }
            if (row.SecretRef is not null)
            {
                Console.WriteLine($"The worker reads the secret from its environment variable {row.SecretRef}; set it wherever workers run.");
            }

            return 0;
        });
        return command;
    }

    private static Command List(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var tenant = TenantOption();
        var command = new Command("list", "Show a tenant's channels: enabled, destination, security, and the name of each secret's variable.") { tenant };
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var loggerFactory = loggers(parse);
            await using var target = await DatabaseTarget.OpenMigratedAsync(options(parse), loggerFactory, cancellationToken);
            var tenantId = await CycleCommands.ResolveTenantAsync(target.DataSource, parse.GetValue(tenant)!, cancellationToken);
            var lines = new List<string[]> { new[] { "channel", "enabled", "destination", "security", "secret ref" } };
            foreach (var c in await EngagementStore.MessageChannelsAsync(target.DataSource, tenantId, cancellationToken))
            {
                var row = new ChannelRow(c.Channel, c.WebhookUrl, c.SmtpHost, c.SmtpPort, c.SmtpSecurity, c.SmtpUsername, c.SmtpFrom, c.SecretRef, c.SmtpTlsPin);
                lines.Add([row.Channel, c.Enabled ? "yes" : "no", Destination(row), Security(row), row.SecretRef ?? "-"]);
            }

            if (lines.Count == 1)
            {
                Console.WriteLine($"Tenant {tenantId} has no channels; add one with 'hourglass channels set'.");
                return 0;
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

    private static Command Disable(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var tenant = TenantOption();
        var channel = ChannelOption();
        var command = new Command("disable", "Switch a tenant's channel off (its settings are kept; 'channels set' switches it on again).") { tenant, channel };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var name = ChannelName(parse.GetValue(channel)!);
            using var loggerFactory = loggers(parse);
            await using var target = await DatabaseTarget.OpenMigratedAsync(options(parse), loggerFactory, cancellationToken);
            var tenantId = await CycleCommands.ResolveTenantAsync(target.DataSource, parse.GetValue(tenant)!, cancellationToken);
            if (!await EngagementStore.DisableMessageChannelAsync(target.DataSource, tenantId, name, cancellationToken))
            {
                throw new HourglassException($"--channel: tenant {tenantId} has no {name} channel");
            }

            Console.WriteLine($"Tenant {tenantId}: {name} channel disabled. New messages no longer choose it; queued ones are retried " +
                              "until it is enabled again or their attempts run out.");
            return 0;
        });
        return command;
    }

    /// <summary>Checks <c>channels set</c>'s options for the channel, naming the first bad one; returns the row to write.</summary>
    internal static ChannelRow Validate(string channel, string? url, string? secretRef, string? host, int? port, string? security, string? username,
        string? from, string? pin)
    {
        channel = ChannelName(channel);
        if (secretRef is not null)
        {
            CheckSecretRef(secretRef);
        }

        if (channel == MessageChannel.Webhook)
        {
            foreach (var (option, value) in new[] { ("--smtp-host", host), ("--smtp-port", port?.ToString(CultureInfo.InvariantCulture)),
                         ("--smtp-security", security), ("--smtp-username", username), ("--smtp-from", from), ("--smtp-tls-pin", pin) })
            {
                if (value is not null)
                {
                    throw new HourglassException($"{option}: only for --channel email");
                }
            }

            return new ChannelRow(channel, CheckWebhookUrl(url), null, null, "auto", null, null,
                secretRef ?? throw new HourglassException("--secret-ref: required for a webhook: the name of the environment variable holding its whsec_ signing secret"),
                null);
        }

        if (url is not null)
        {
            throw new HourglassException("--url: only for --channel webhook");
        }

        if (string.IsNullOrWhiteSpace(host))
        {
            throw new HourglassException("--smtp-host: required for --channel email (the relay's host name or IP address)");
        }

        host = host.Trim();
        if (Uri.CheckHostName(host) == UriHostNameType.Unknown)
        {
            throw new HourglassException($"--smtp-host: '{host}' is not a host name or IP address");
        }

        if (port is null)
        {
            throw new HourglassException("--smtp-port: required for --channel email (587 for STARTTLS, 465 for TLS)");
        }

        if (port is < 1 or > 65535)
        {
            throw new HourglassException($"--smtp-port: must be between 1 and 65535 (got {port})");
        }

        security = security?.Trim().ToLowerInvariant() ?? "auto";
        if (!s_securities.Contains(security))
        {
            throw new HourglassException($"--smtp-security: must be one of {string.Join(", ", s_securities)} (got '{security}')");
        }

        if (from is null)
        {
            throw new HourglassException("--smtp-from: required for --channel email (the From address)");
        }

        if (!MessageAddress.IsEmailAddress(from))
        {
            throw new HourglassException($"--smtp-from: '{from}' is not a single email address (write agent@acme.example, without a display name)");
        }

        if (username is not null && string.IsNullOrWhiteSpace(username))
        {
            throw new HourglassException("--smtp-username: must not be empty");
        }

        if (username is not null && secretRef is null)
        {
            throw new HourglassException("--secret-ref: required with --smtp-username: the name of the environment variable holding the SMTP password");
        }

        if (username is null && secretRef is not null)
        {
            throw new HourglassException("--secret-ref: for email it names the SMTP password's variable; give --smtp-username too");
        }

        string? normalizedPin = null;
        if (pin is not null)
        {
            normalizedPin = pin.Replace(":", "", StringComparison.Ordinal).Trim().ToLowerInvariant();
            if (normalizedPin.Length != 64 || !normalizedPin.All(char.IsAsciiHexDigit))
            {
                throw new HourglassException($"--smtp-tls-pin: must be a SHA-256 fingerprint, 64 hex digits (colons allowed) (got '{pin}')");
            }

            if (security == "none")
            {
                throw new HourglassException("--smtp-tls-pin: pins a TLS certificate; not with --smtp-security none");
            }
        }

        return new ChannelRow(channel, null, host, port, security, username, from.Trim(), secretRef, normalizedPin);
    }

    private static string ChannelName(string channel) => channel.Trim().ToLowerInvariant() switch
    {
        MessageChannel.Webhook => MessageChannel.Webhook,
        MessageChannel.Email => MessageChannel.Email,
        _ => throw new HourglassException($"--channel: must be 'webhook' or 'email' (got '{channel}')"),
    };

    private static string CheckWebhookUrl(string? url)
    {
        if (string.IsNullOrWhiteSpace(url))
        {
            throw new HourglassException("--url: required for --channel webhook (where messages are POSTed)");
        }

        url = url.Trim();
        if (!MessageAddress.IsHttpUrl(url) || !Uri.TryCreate(url, UriKind.Absolute, out var uri))
        {
            throw new HourglassException($"--url: '{url}' is not an absolute https URL");
        }

        if (uri.UserInfo.Length > 0)
        {
            throw new HourglassException("--url: must not carry a user name or password (the database would store it); sign with --secret-ref instead");
        }

        // Messages leave signed but readable: over the network only with TLS. A receiver on the worker's own machine
        // (a sidecar, a test) may listen on plain http.
        if (uri.Scheme != Uri.UriSchemeHttps && !uri.IsLoopback)
        {
            throw new HourglassException($"--url: must be https; plain http only for a loopback host such as 127.0.0.1 (got '{url}')");
        }

        return url;
    }

    /// <summary>Refuses a --secret-ref that is not an environment variable's name (or looks like a secret itself); never echoes it.</summary>
    internal static void CheckSecretRef(string secretRef)
    {
        // The same rule as the column's CHECK: an environment variable's name.
        var isName = secretRef.Length > 0 && (char.IsAsciiLetter(secretRef[0]) || secretRef[0] == '_')
                     && secretRef.All(c => char.IsAsciiLetterOrDigit(c) || c == '_');
        if (!isName || secretRef.StartsWith("whsec_", StringComparison.Ordinal))
        {
            // Never echo the value: it may be the secret itself.
            throw new HourglassException("--secret-ref: give the NAME of the environment variable that holds the secret " +
                                         "(letters, digits and _, e.g. ACME_WEBHOOK_SECRET), not the secret itself");
        }
    }

    private static string Destination(ChannelRow row) => row.Channel == MessageChannel.Webhook
        ? row.WebhookUrl ?? "-"
        : $"{row.SmtpHost}:{row.SmtpPort}, from {row.SmtpFrom}{(row.SmtpUsername is null ? "" : $", login {row.SmtpUsername}")}";

    private static string Security(ChannelRow row) => row.Channel == MessageChannel.Webhook
        ? (row.WebhookUrl is { } url && url.StartsWith("https:", StringComparison.OrdinalIgnoreCase) ? "https" : "http")
        : row.SmtpTlsPin is { } pin ? $"{row.SmtpSecurity}, pinned sha256:{pin}" : row.SmtpSecurity;
}
