using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using MailKit;
using MailKit.Net.Imap;
using MailKit.Security;
using MimeKit;

namespace Hourglass.IntegrationTests.Infrastructure;

/// <summary>
/// A real IMAP server for the tests: Debian's Dovecot (<c>dovecot-imapd</c>) started from a temporary configuration —
/// listening on 127.0.0.1 on a free port, plain IMAP (no TLS), one user in a passwd-file, mail in a Maildir — all in a
/// temporary folder removed when it stops. Dovecot runs as a non-root user: the test's own, or, when the tests run as
/// root, the <c>dovecot</c> user the package creates (as the tests run PostgreSQL as <c>postgres</c>). Missing Dovecot is
/// a failure that says what to install, never a skip.
/// </summary>
internal sealed class DovecotServer : IAsyncDisposable
{
    public const string Binary = "/usr/sbin/dovecot";

    private readonly Process _process;
    private readonly string _directory;

    private DovecotServer(Process process, string directory, int port, string username, string password)
    {
        _process = process;
        _directory = directory;
        Port = port;
        Username = username;
        Password = password;
    }

    public int Port { get; }

    public string Username { get; }

    public string Password { get; }

    public static async Task<DovecotServer> StartAsync(string username = "agent", string password = "mailbox-password-1")
    {
        if (!File.Exists(Binary))
        {
            throw new InvalidOperationException(
                $"Dovecot is not installed ({Binary} is missing): the mailbox tests need a real IMAP server. Install it with " +
                "'apt-get install -y dovecot-imapd' (Debian), as .ci/run does.");
        }

        var osUser = Environment.IsPrivilegedProcess ? "dovecot" : Environment.UserName;
        var uid = await RunAsync("id", "-u", osUser);
        var gid = await RunAsync("id", "-g", osUser);
        var group = await RunAsync("id", "-gn", osUser);
        var directory = Directory.CreateTempSubdirectory("hourglass-dovecot-").FullName;
        var port = FreePort();
        var mail = Path.Combine(directory, "mail");
        Directory.CreateDirectory(Path.Combine(directory, "run"));
        Directory.CreateDirectory(Path.Combine(directory, "state"));
        Directory.CreateDirectory(mail);
        var users = Path.Combine(directory, "users");
        // passwd-file: user:{scheme}password:uid:gid::home
        await File.WriteAllTextAsync(users, $"{username}:{{PLAIN}}{password}:{uid}:{gid}::{mail}/{username}\n");
        var config = Path.Combine(directory, "dovecot.conf");
        await File.WriteAllTextAsync(config, $$"""
            protocols = imap
            listen = 127.0.0.1
            base_dir = {{directory}}/run
            state_dir = {{directory}}/state
            log_path = {{directory}}/dovecot.log
            default_internal_user = {{osUser}}
            default_internal_group = {{group}}
            default_login_user = {{osUser}}
            first_valid_uid = {{uid}}
            first_valid_gid = {{gid}}
            ssl = no
            disable_plaintext_auth = no
            auth_mechanisms = plain login
            auth_failure_delay = 0
            mail_location = maildir:{{mail}}/%u
            passdb {
              driver = passwd-file
              args = scheme=PLAIN username_format=%u {{users}}
            }
            userdb {
              driver = passwd-file
              args = username_format=%u {{users}}
            }
            service imap-login {
              chroot =
              inet_listener imap {
                address = 127.0.0.1
                port = {{port}}
              }
              inet_listener imaps {
                port = 0
              }
            }
            service anvil {
              chroot =
            }
            """);
        if (Environment.IsPrivilegedProcess)
        {
            await RunAsync("chown", "-R", $"{osUser}:", directory);
        }

        var start = Environment.IsPrivilegedProcess
            ? new ProcessStartInfo("runuser", ["-u", osUser, "--", Binary, "-F", "-c", config])
            : new ProcessStartInfo(Binary, ["-F", "-c", config]);
        start.RedirectStandardError = true;
        start.RedirectStandardOutput = true;
        var process = Process.Start(start)!;
        var server = new DovecotServer(process, directory, port, username, password);
        try
        {
            await server.WaitReadyAsync();
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }

        return server;
    }

    /// <summary>A client logged in as the test user (for putting messages into the mailbox as a sender's server would).</summary>
    public async Task<ImapClient> ConnectAsync()
    {
        var client = new ImapClient { Timeout = 10_000 };
        await client.ConnectAsync("127.0.0.1", Port, SecureSocketOptions.None);
        await client.AuthenticateAsync(Username, Password);
        return client;
    }

    /// <summary>Puts <paramref name="message"/> into <paramref name="folder"/> (IMAP APPEND); returns its UID.</summary>
    public async Task<uint> AppendAsync(MimeMessage message, string folder = "INBOX")
    {
        using var client = await ConnectAsync();
        var target = folder == "INBOX" ? client.Inbox : await client.GetFolderAsync(folder);
        var uid = await target.AppendAsync(new AppendRequest(message, MessageFlags.None));
        await client.DisconnectAsync(true);
        return uid?.Id ?? throw new InvalidOperationException("the server did not report the appended message's UID (UIDPLUS)");
    }

    /// <summary>Creates <paramref name="folder"/>, or deletes and creates it again (a new UIDVALIDITY); returns its UIDVALIDITY.</summary>
    public async Task<uint> RecreateFolderAsync(string folder)
    {
        using var client = await ConnectAsync();
        var root = client.GetFolder(client.PersonalNamespaces[0]);
        if ((await root.GetSubfoldersAsync()).FirstOrDefault(f => f.Name == folder) is { } existing)
        {
            await existing.DeleteAsync();
        }

        var created = await root.CreateAsync(folder, true) ?? throw new InvalidOperationException($"the server did not create '{folder}'");
        await created.OpenAsync(FolderAccess.ReadOnly);
        var validity = created.UidValidity;
        await client.DisconnectAsync(true);
        return validity;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }
        }
        finally
        {
            _process.Dispose();
            try
            {
                Directory.Delete(_directory, recursive: true);
            }
            catch (IOException)
            {
                // A child still closing a file: the temporary folder is left for the OS to clear.
            }
        }
    }

    private async Task WaitReadyAsync()
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(20))
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"dovecot exited with {_process.ExitCode}: {await _process.StandardError.ReadToEndAsync()} {Log()}");
            }

            try
            {
                using var tcp = new TcpClient();
                await tcp.ConnectAsync(IPAddress.Loopback, Port);
                using var reader = new StreamReader(tcp.GetStream());
                var greeting = await reader.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(5));
                if (greeting?.StartsWith("* OK", StringComparison.Ordinal) == true)
                {
                    return;
                }
            }
            catch (SocketException)
            {
            }

            await Task.Delay(50);
        }

        throw new InvalidOperationException($"dovecot did not answer on 127.0.0.1:{Port} within 20 s. {Log()}");
    }

    private string Log()
    {
        var path = Path.Combine(_directory, "dovecot.log");
        return File.Exists(path) ? "Its log: " + File.ReadAllText(path) : "";
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static async Task<string> RunAsync(string program, params string[] arguments)
    {
        using var process = Process.Start(new ProcessStartInfo(program, arguments) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var output = await process.StandardOutput.ReadToEndAsync();
        var error = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return process.ExitCode == 0
            ? output.Trim()
            : throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture, $"{program} {string.Join(' ', arguments)} exited with {process.ExitCode}: {error}"));
    }
}
