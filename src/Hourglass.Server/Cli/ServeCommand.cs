using System.CommandLine;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Hourglass.Composition;
using Hourglass.Cycles;
using Hourglass.Server.Api;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Metrics;

namespace Hourglass.Server.Cli;

/// <summary>
/// <c>hourglass serve</c>: the default deployment, one process with the worker loop and the HTTP endpoints
/// (for now <c>/health</c>; the API and dashboard join it).
/// </summary>
internal static class ServeCommand
{
    public static Command Build(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)
    {
        var urls = new Option<string>("--urls") { Description = "Where to listen.", DefaultValueFactory = _ => "http://127.0.0.1:8080" };
        var noWorker = new Option<bool>("--no-worker") { Description = "Serve HTTP only; run workers elsewhere." };
        var command = new Command("serve", "Run the worker loop and the HTTP endpoints in one process, until Ctrl+C.") { urls, noWorker };
        command.SetAction(async (parse, cancellationToken) =>
        {
            foreach (var url in parse.GetValue(urls)!.Split(';', StringSplitOptions.RemoveEmptyEntries))
            {
                var wildcard = url.Contains('*', StringComparison.Ordinal) || url.Contains('+', StringComparison.Ordinal);
                if (!Uri.TryCreate(url.Replace("*", "localhost", StringComparison.Ordinal).Replace("+", "localhost", StringComparison.Ordinal), UriKind.Absolute, out var uri)
                    || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
                {
                    throw new HourglassException($"--urls: '{url}' is not an http(s) address (e.g. http://127.0.0.1:8080)");
                }

                // Before anything starts — the database, the worker, the dispatcher: a busy port is a one-line error.
                // Kestrel listens on every interface for '*', '+' and any host name but localhost.
                EnsureFree(url, wildcard ? IPAddress.Any
                    : uri.HostNameType is UriHostNameType.IPv4 or UriHostNameType.IPv6 ? IPAddress.Parse(uri.Host.Trim('[', ']'))
                    : uri.IsLoopback ? IPAddress.Loopback : IPAddress.Any, uri.Port);
            }

            using var loggerFactory = loggers(parse);
            // Settings first: a wrong one, or a JWKS that cannot be read, stops serve with one line before anything starts.
            var rateLimits = ApiRateLimitSettings.FromEnvironment();
            var workerPoolSize = WorkerPoolSize();
            var mailboxPoll = CycleComposition.MailboxPollInterval(Environment.GetEnvironmentVariable(CycleComposition.MailboxPollVariable));
            using var jwksHttp = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
            var auth = await ApiAuth.FromEnvironmentAsync(jwksHttp, ProductClock.Time, loggerFactory, cancellationToken);
            var unsubscribe = UnsubscribeEndpoints.FromEnvironment(ProductClock.Time, loggerFactory);

            await using var target = await DatabaseTarget.OpenMigratedAsync(options(parse), loggerFactory, cancellationToken);
            // Two pools: API load (one tenant's batches, say) cannot take the connections the worker's cycles and
            // dispatcher need, nor the other way round. Each has its own size and Application Name (docs/operations.md).
            await using var apiPool = target.CreatePool("api", null);
            await using var workerPool = parse.GetValue(noWorker) ? null : target.CreatePool("worker", workerPoolSize);
            var worker = workerPool is null
                ? null
                : CycleComposition.CreateWorker(workerPool, ProductClock.Time, summaries: Narrative.FromEnvironment(loggerFactory), loggers: loggerFactory);

            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.Services.AddSingleton(loggerFactory);
            builder.Services.AddProblemDetails(problems => problems.CustomizeProblemDetails = ApiInput.DescribeFrameworkProblem);
            builder.Services.AddHourglassRateLimits(rateLimits);
            builder.Services.AddOpenApi("v1", openApi => openApi.AddDocumentTransformer((document, _, _) =>
            {
                document.Info.Title = "Hourglass API";
                document.Info.Description = "The autonomous account-management agent's API: runs and reflections, engagement, cards and approvals, " +
                                            "policies and violations, orders and exceptions, events, patterns and strategies. docs/api.md.";
                return Task.CompletedTask;
            }).AddDocumentTransformer(ApiOpenApi.AddSecuritySchemesAsync));
            builder.Services.ConfigureHttpJsonOptions(json => json.SerializerOptions.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower);
            builder.Services.AddOpenTelemetry().WithMetrics(metrics => metrics.AddMeter(CycleTelemetry.Name).AddPrometheusExporter());
            builder.WebHost.UseUrls(parse.GetValue(urls)!);
            await using var app = builder.Build();
            app.UseExceptionHandler();
            app.UseStatusCodePages();
            // The token is checked before the rate limiter, which limits per caller, and answered 401 after it.
            if (auth is not null)
            {
                app.UseApiAuthentication(auth);
            }

            app.UseRateLimiter();
            app.UseApiUnauthorized();
            app.UseApiBatchAdmission(apiPool);
            app.MapGet("/health", async (CancellationToken requestAborted) => await HealthAsync(apiPool, worker, requestAborted));
            app.MapOpenApi("/openapi/{documentName}.json");
            app.MapPrometheusScrapingEndpoint("/metrics");
            if (unsubscribe is not null)
            {
                // Public, no login: the signed token is the authority (docs/unsubscribe.md).
                UnsubscribeEndpoints.Map(app, apiPool, unsubscribe);
            }

            // Public, no login: each source's signature is the credential (docs/inbound.md).
            InboundEndpoints.Map(app, apiPool, ProductClock.Time, loggerFactory, Narrative.ReplyClassifierFromEnvironment(ProductClock.Time, loggerFactory));

            if (auth is not null)
            {
                ApiEndpoints.Map(app, apiPool, auth, worker);
                app.MapDashboard();
            }
            else
            {
                loggerFactory.CreateLogger("Hourglass.Api").LogWarning(
                    "No token keys are set (HOURGLASS_JWT_SECRET of at least 32 characters, HOURGLASS_JWKS_URL or HOURGLASS_JWKS_FILE): the API and dashboard are off");
            }

            try
            {
                await app.StartAsync(cancellationToken);
            }
            catch (IOException ex)
            {
                // Taken between the check above and now (or a host name's address): still before the worker starts.
                throw new HourglassException($"--urls: {ex.Message.TrimEnd('.')}: stop what listens there, or choose another address with --urls", ex);
            }

            var background = new List<Task>();
            if (worker is not null)
            {
                background.Add(worker.RunAsync(cancellationToken));
                background.Add(CycleComposition.CreateDispatcherLoop(workerPool!, worker.WorkerId, ProductClock.Time, loggerFactory, unsubscribe)(cancellationToken));
                background.Add(CycleComposition.CreateMailboxLoop(workerPool!, ProductClock.Time, mailboxPoll, loggerFactory,
                    Narrative.ReplyClassifierFromEnvironment(ProductClock.Time, loggerFactory))(cancellationToken));
            }

            if (auth?.Jwks is { } jwks)
            {
                background.Add(jwks.RunRefreshLoopAsync(cancellationToken));
            }

            Console.WriteLine($"Serving on {parse.GetValue(urls)}{(worker is null ? "" : $" with worker {worker.WorkerId}")}; database {target.Description}. Ctrl+C stops.");
            await app.WaitForShutdownAsync(cancellationToken);
            await Task.WhenAll(background);
            return 0;
        });
        return command;
    }

    /// <summary>The worker's pool size in serve (HOURGLASS_WORKER_POOL_SIZE, default 10).</summary>
    private static int WorkerPoolSize() => Environment.GetEnvironmentVariable(WorkerPoolVariable) switch
    {
        null or "" => DefaultWorkerPoolSize,
        var text when int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var size) && size > 0 => size,
        var text => throw new HourglassException($"{WorkerPoolVariable}: '{text}' is not a positive whole number (the default is {DefaultWorkerPoolSize})"),
    };

    public const string WorkerPoolVariable = "HOURGLASS_WORKER_POOL_SIZE";

    // Four cycles at once (the worker's default), each with at most two connections open, and the dispatcher.
    public const int DefaultWorkerPoolSize = 10;

    // Binds the address for a moment, as Kestrel will: taken by another process (EADDRINUSE), not this machine's
    // (EADDRNOTAVAIL) or a privileged port (EACCES) is refused now. Port 0 (any free port) is left to Kestrel.
    private static void EnsureFree(string url, IPAddress address, int port)
    {
        if (port == 0)
        {
            return;
        }

        using var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Bind(new IPEndPoint(address, port));
        }
        catch (SocketException ex)
        {
            throw new HourglassException(ex.SocketErrorCode switch
            {
                SocketError.AddressAlreadyInUse => $"--urls: {url} is already in use by another process: stop it, or choose another address with --urls",
                SocketError.AddressNotAvailable => $"--urls: {url}: {address} is not an address of this machine; choose another with --urls",
                SocketError.AccessDenied => $"--urls: {url}: not allowed to listen on port {port} (below 1024 needs privileges); choose another with --urls",
                _ => $"--urls: {url}: cannot listen there ({ex.Message}); choose another address with --urls",
            }, ex);
        }
    }

    // Healthy when the database answers and the worker (if any) finished a pass within three poll intervals.
    private static async Task<IResult> HealthAsync(Npgsql.NpgsqlDataSource dataSource, CycleWorker? worker, CancellationToken cancellationToken)
    {
        string database;
        try
        {
            await using var command = dataSource.CreateCommand("select 1");
            await command.ExecuteScalarAsync(cancellationToken);
            database = "ok";
        }
        catch (Npgsql.NpgsqlException ex)
        {
            database = "unreachable: " + ex.Message;
        }

        var heartbeatFresh = worker is null
            || (worker.LastPassAt is { } last && ProductClock.Time.GetUtcNow() - last < 3 * worker.PollInterval + TimeSpan.FromMinutes(5));
        var healthy = database == "ok" && heartbeatFresh;
        var body = new Dictionary<string, object?>
        {
            ["status"] = healthy ? "healthy" : "unhealthy",
            ["database"] = database,
            ["worker"] = worker is null ? null : new Dictionary<string, object?>
            {
                ["id"] = worker.WorkerId,
                ["last_pass_at"] = worker.LastPassAt,
                ["heartbeat_fresh"] = heartbeatFresh,
            },
        };
        return Results.Json(body, statusCode: healthy ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable);
    }
}
