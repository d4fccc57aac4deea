using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Hourglass.IntegrationTests.Infrastructure;

namespace Hourglass.IntegrationTests.Cli;

/// <summary>hourglass serve: the worker loop and the health endpoint in one real process on loopback.</summary>
public sealed class ServeCommandTests : DatabaseTest
{
    [Fact]
    public async Task Serve_HealthyAndItsWorkerRunsDueTenants()
    {
        var tenant = await Db.CreateTenantAsync("served tenant");
        await Db.ExecuteAsync("update public.agent_tenant_schedules set next_due_at = date_trunc('hour', now()) where tenant_id = $1", tenant);
        var url = $"http://127.0.0.1:{FreePort()}";
        using var serve = HourglassProcess.Start(null, "serve", "--urls", url, "--database", ConnectionString);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        try
        {
            JsonNode? health = null;
            for (var i = 0; i < 100 && health is null; i++)
            {
                try
                {
                    var response = await http.GetAsync($"{url}/health");
                    if (response.StatusCode == HttpStatusCode.OK)
                    {
                        health = JsonNode.Parse(await response.Content.ReadAsStringAsync());
                    }
                }
                catch (HttpRequestException)
                {
                    // Not listening yet.
                }

                await Task.Delay(200);
            }

            Assert.NotNull(health);
            Assert.Equal("healthy", (string?)health["status"]);
            Assert.Equal("ok", (string?)health["database"]);
            Assert.True((bool)health["worker"]!["heartbeat_fresh"]!);

            for (var i = 0; i < 100; i++)
            {
                if ((long)(await Db.ScalarAsync("select count(*) from public.agent_autonomous_runs where tenant_id = $1 and status = 'completed'", tenant))! > 0)
                {
                    return;
                }

                await Task.Delay(200);
            }

            Assert.Fail("the served worker never ran the due tenant");
        }
        finally
        {
            serve.Kill(entireProcessTree: true);
            await serve.WaitForExitAsync();
        }
    }

    [Fact]
    public async Task Serve_BadUrls_OneLineError()
    {
        var result = await HourglassProcess.RunAsync("serve", "--urls", "ftp://127.0.0.1:21", "--database", ConnectionString);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("--urls: 'ftp://127.0.0.1:21' is not an http(s) address", result.StandardError, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("http://127.0.0.1:{0}")]
    [InlineData("http://localhost:{0}")]
    [InlineData("http://*:{0}")]
    public async Task Serve_PortInUse_OneLineErrorBeforeAnythingStarts(string address)
    {
        // A real listener holds the port; the database is a fresh empty one, so "nothing started" is visible in it:
        // not migrated, no worker registered, no run.
        using var holder = new TcpListener(IPAddress.Loopback, 0);
        holder.Start();
        var url = string.Format(System.Globalization.CultureInfo.InvariantCulture, address, ((IPEndPoint)holder.LocalEndpoint).Port);
        var empty = await TestServer.CreateDatabaseAsync(migrated: false);
        try
        {
            var result = await HourglassProcess.RunAsync(new Dictionary<string, string?> { ["HOURGLASS_JWT_SECRET"] = new string('s', 40) },
                "serve", "--urls", url, "--database", empty);

            Assert.Equal(1, result.ExitCode);
            Assert.Equal($"hourglass: --urls: {url} is already in use by another process: stop it, or choose another address with --urls", result.StandardError.Trim());
            Assert.Equal("", result.StandardOutput);
            await using var database = Npgsql.NpgsqlDataSource.Create(empty);
            await using var command = database.CreateCommand("select count(*) from pg_catalog.pg_namespace where nspname in ('hourglass', 'supabase_migrations')");
            Assert.Equal(0L, await command.ExecuteScalarAsync());
        }
        finally
        {
            await TestServer.DropDatabaseAsync(empty);
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
