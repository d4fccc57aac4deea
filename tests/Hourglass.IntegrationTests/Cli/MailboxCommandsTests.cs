using System.Globalization;
using System.Text;
using Hourglass.IntegrationTests.Infrastructure;
using MimeKit;

namespace Hourglass.IntegrationTests.Cli;

/// <summary>
/// hourglass inbound mailbox set / list / poll / disable, run as an operator would against a real Dovecot on loopback:
/// what is written, what is shown, what is refused (a bad option writes nothing; a wrong password fails the poll with
/// its reason and exit code 1, never printing the password).
/// </summary>
public sealed class MailboxCommandsTests : DatabaseTest
{
    private const string Tenant = "Mailbox Co";

    private DovecotServer _imap = null!;
    private Guid _tenant;

    protected override async Task SeedAsync()
    {
        _tenant = await Db.CreateTenantAsync(Tenant);
        _imap = await DovecotServer.StartAsync();
    }

    protected override async Task TearDownAsync() => await _imap.DisposeAsync();

    [Fact]
    public async Task SetPollList_ReportSkippedAndPositionKept_WrongPasswordFailsWithReason_DisableStopsPolling()
    {
        var port = _imap.Port.ToString(CultureInfo.InvariantCulture);
        var refused = await RunAsync(null, "inbound", "mailbox", "set", "--tenant", Tenant, "--imap-host", "127.0.0.1", "--imap-port", port,
            "--imap-username", _imap.Username, "--secret-ref", _imap.Password);
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("--secret-ref: give the NAME of the environment variable", refused.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain(_imap.Password, refused.StandardError, StringComparison.Ordinal);
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.inbound_sources"));

        var set = await RunAsync(null, "inbound", "mailbox", "set", "--tenant", Tenant, "--imap-host", "127.0.0.1", "--imap-port", port,
            "--imap-security", "none", "--imap-username", _imap.Username, "--secret-ref", "MAILBOX_PASSWORD");
        Assert.True(set.ExitCode == 0, set.StandardError);
        Assert.Equal($"t|127.0.0.1|{port}|none|{_imap.Username}|INBOX|MAILBOX_PASSWORD", await Db.ScalarAsync("""
            select concat_ws('|', enabled, imap_host, imap_port, imap_security, imap_username, imap_mailbox, secret_ref)
            from public.inbound_sources where tenant_id = $1 and source = 'imap'
            """, _tenant));

        var uid = await _imap.AppendAsync(Report("dsn-cli"));
        var good = new Dictionary<string, string?> { ["MAILBOX_PASSWORD"] = _imap.Password };
        var poll = await RunAsync(good, "inbound", "mailbox", "poll", "--tenant", Tenant);
        Assert.True(poll.ExitCode == 0, poll.StandardError);
        Assert.Contains($"Tenant {_tenant}: polled: 0 recorded, 0 seen before, 1 skipped.", poll.StandardOutput, StringComparison.Ordinal);
        Assert.Equal("bounce_hard|skipped", await Db.ScalarAsync("select event_type || '|' || effect from public.message_delivery_events where tenant_id = $1", _tenant));

        var list = await RunAsync(null, "inbound", "mailbox", "list");
        Assert.True(list.ExitCode == 0, list.StandardError);
        var row = list.StandardOutput.Split('\n').Single(l => l.StartsWith(_tenant.ToString(), StringComparison.Ordinal));
        Assert.Contains($"{_imap.Username}@127.0.0.1:{port}/INBOX (none)", row, StringComparison.Ordinal);
        Assert.Matches($@"MAILBOX_PASSWORD\s+\d+:{uid}\s+\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\dZ\s+-$", row.TrimEnd());

        var wrong = await RunAsync(new Dictionary<string, string?> { ["MAILBOX_PASSWORD"] = "not-it" }, "inbound", "mailbox", "poll");
        Assert.Equal(1, wrong.ExitCode);
        Assert.Contains("failed: 0 recorded, 0 seen before, 0 skipped; login refused by 127.0.0.1", wrong.StandardOutput, StringComparison.Ordinal);
        Assert.DoesNotContain("not-it", wrong.StandardOutput + wrong.StandardError, StringComparison.Ordinal);
        Assert.Equal(1L, await Db.ScalarAsync("select count(*) from public.message_delivery_events"));

        var disabled = await RunAsync(null, "inbound", "mailbox", "disable", "--tenant", Tenant);
        Assert.True(disabled.ExitCode == 0, disabled.StandardError);
        var none = await RunAsync(good, "inbound", "mailbox", "poll");
        Assert.Contains("No mailbox is enabled.", none.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Worker_PollsTheMailboxesOnItsInterval_BadIntervalRefused()
    {
        var bad = await RunAsync(new Dictionary<string, string?> { ["HOURGLASS_MAILBOX_POLL_SECONDS"] = "soon" }, "worker");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("HOURGLASS_MAILBOX_POLL_SECONDS: 'soon' is not a positive whole number of seconds", bad.StandardError, StringComparison.Ordinal);

        var set = await RunAsync(null, "inbound", "mailbox", "set", "--tenant", Tenant, "--imap-host", "127.0.0.1", "--imap-port",
            _imap.Port.ToString(CultureInfo.InvariantCulture), "--imap-security", "none", "--imap-username", _imap.Username, "--secret-ref", "MAILBOX_PASSWORD");
        Assert.True(set.ExitCode == 0, set.StandardError);
        await _imap.AppendAsync(Report("dsn-worker-1"));
        using var worker = HourglassProcess.Start(
            new Dictionary<string, string?> { ["MAILBOX_PASSWORD"] = _imap.Password, ["HOURGLASS_MAILBOX_POLL_SECONDS"] = "1" },
            "worker", "--poll-seconds", "1", "--database", ConnectionString);
        try
        {
            await WaitForEventsAsync(1);
            // A message that arrives while the worker runs is read on a later round.
            await _imap.AppendAsync(Report("dsn-worker-2"));
            await WaitForEventsAsync(2);
        }
        finally
        {
            worker.Kill(entireProcessTree: true);
            await worker.WaitForExitAsync();
        }

        Assert.Equal("dsn-worker-1@mx.client.example,dsn-worker-2@mx.client.example", await Db.ScalarAsync("""
            select string_agg(source_event_id, ',' order by source_event_id) from public.message_delivery_events where tenant_id = $1
            """, _tenant));
    }

    private async Task WaitForEventsAsync(long count)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while ((long)(await Db.ScalarAsync("select count(*) from public.message_delivery_events where tenant_id = $1", _tenant))! < count)
        {
            Assert.True(DateTime.UtcNow < deadline, $"the worker did not record {count} event(s) from the mailbox within 60 s");
            await Task.Delay(200);
        }
    }

    // A bounce report about an email this tenant never sent (the recorder skips it, with its reason).
    private static MimeMessage Report(string id) => MimeMessage.Load(new MemoryStream(Encoding.UTF8.GetBytes($"""
        From: MAILER-DAEMON@mx.client.example
        Subject: Undelivered Mail
        Date: Tue, 03 Nov 2026 11:00:00 +0000
        Message-ID: <{id}@mx.client.example>
        MIME-Version: 1.0
        Content-Type: multipart/report; report-type=delivery-status; boundary="b1"

        --b1
        Content-Type: message/delivery-status

        Reporting-MTA: dns; mx.client.example

        Final-Recipient: rfc822; gone@client.example
        Action: failed
        Status: 5.1.1

        --b1
        Content-Type: text/rfc822-headers

        Message-ID: <0badc0de0badc0de0badc0de0badc0de.outbox@acme.example>

        --b1--
        """.ReplaceLineEndings("\r\n"))));

    private async Task<HourglassProcess.Result> RunAsync(Dictionary<string, string?>? environment, params string[] arguments) =>
        await HourglassProcess.RunAsync(environment, [.. arguments, "--database", ConnectionString]);
}
