using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.DependencyInjection;

namespace Hourglass.Server.Api;

/// <summary>The API's limits (docs/api.md, "Rate limits"), from the environment; a value that is not a positive whole number stops <c>serve</c>.</summary>
internal sealed record ApiRateLimitSettings(int TenantPerSecond, int CallerPerSecond, int TenantBatches, int PublicPerSecond = ApiRateLimitSettings.DefaultPublicPerSecond)
{
    public const string TenantVariable = "HOURGLASS_API_RATE_LIMIT";
    public const string CallerVariable = "HOURGLASS_API_CALLER_RATE_LIMIT";
    public const string BatchesVariable = "HOURGLASS_API_TENANT_BATCHES";
    public const string PublicVariable = "HOURGLASS_PUBLIC_RATE_LIMIT";

    public const int DefaultPerSecond = 50;
    public const int DefaultTenantBatches = 2;

    /// <summary>The public routes' default: a provider posting its webhooks from one address bursts well above a person.</summary>
    public const int DefaultPublicPerSecond = 100;

    /// <summary>The per-caller limit defaults to the per-tenant one, so setting HOURGLASS_API_RATE_LIMIT alone moves both.</summary>
    public static ApiRateLimitSettings FromEnvironment()
    {
        var tenant = Read(TenantVariable, DefaultPerSecond);
        return new ApiRateLimitSettings(tenant, Read(CallerVariable, tenant), Read(BatchesVariable, DefaultTenantBatches),
            Read(PublicVariable, DefaultPublicPerSecond));
    }

    private static int Read(string name, int fallback) => Environment.GetEnvironmentVariable(name) switch
    {
        null or "" => fallback,
        var text when int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) && value > 0 => value,
        var text => throw new HourglassException($"{name}: '{text}' is not a positive whole number (the default is {fallback})"),
    };
}

/// <summary>Marks the batch routes (POST …/touches, POST …/events): they also take one of the tenant's batch slots.</summary>
internal sealed class ApiBatchRoute
{
    public static readonly ApiBatchRoute Instance = new();

    private ApiBatchRoute()
    {
    }
}

/// <summary>
/// Rate limits in two steps. Per caller, always, before anything else runs: a token bucket per user id, one for the
/// service role, and one per client address for requests without a valid token (the rate limiter middleware and
/// <see cref="PolicyName"/>). Per tenant, only once the caller is known to be a member (<see cref="ApiTenantLimits"/>,
/// from <see cref="ApiSession.RunAsync"/>), keyed on the parsed tenant id, so a stranger cannot spend a tenant's budget and
/// every spelling of one id shares one. Over a limit: 429 with Retry-After and a problem document.
/// </summary>
internal static class ApiRateLimits
{
    public const string PolicyName = "per-caller";

    /// <summary>
    /// The public routes' policy (<c>/inbound</c>, <c>/unsubscribe</c>: no login, a signature or a signed token is the
    /// credential): a token bucket per client address, checked before any signature or database work, so a flood of forged
    /// requests is turned away cheaply and spends no one's budget but its sender's.
    /// </summary>
    public const string PublicPolicyName = "public-per-address";

    public static IServiceCollection AddHourglassRateLimits(this IServiceCollection services, ApiRateLimitSettings settings)
    {
        services.AddSingleton(new ApiTenantLimits(settings));
        return services.AddRateLimiter(options =>
        {
            options.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
            options.OnRejected = async (context, _) =>
            {
                var publicRoute = context.HttpContext.GetEndpoint()?.Metadata.GetMetadata<EnableRateLimitingAttribute>()?.PolicyName == PublicPolicyName;
                var detail = publicRoute
                    ? $"more than {settings.PublicPerSecond} requests a second from this address ({ApiRateLimitSettings.PublicVariable}); retry after a second"
                    : $"more than {settings.CallerPerSecond} requests a second {(Caller(context.HttpContext) is null ? "from this address without a valid token" : "from this caller")} ({ApiRateLimitSettings.CallerVariable}); retry after a second";
                await TooMany(context.HttpContext, detail).ExecuteAsync(context.HttpContext);
            };
            options.AddPolicy(PublicPolicyName, http => RateLimitPartition.GetTokenBucketLimiter(
                "address:" + (http.Connection.RemoteIpAddress?.ToString() ?? "unknown"), _ => Bucket(settings.PublicPerSecond)));
            options.AddPolicy(PolicyName, http =>
            {
                // The caller the authentication middleware found: a user, the service role, or nobody (then the address).
                var caller = Caller(http);
                var key = caller is null
                    ? "address:" + (http.Connection.RemoteIpAddress?.ToString() ?? "unknown")
                    : caller.UserId is { } user ? "user:" + user.ToString("D") : "role:" + caller.Role;
                return RateLimitPartition.GetTokenBucketLimiter(key, _ => Bucket(settings.CallerPerSecond));
            });
        });
    }

    /// <summary>A 429 problem with Retry-After: 1.</summary>
    public static IResult TooMany(HttpContext http, string detail)
    {
        http.Response.Headers.RetryAfter = "1";
        return Results.Problem(title: "Too many requests", detail: detail, statusCode: StatusCodes.Status429TooManyRequests,
            type: "https://hourglass.dev/problems/rate-limited");
    }

    internal static TokenBucketRateLimiterOptions Bucket(int perSecond) => new()
    {
        TokenLimit = perSecond * 2,
        TokensPerPeriod = perSecond,
        ReplenishmentPeriod = TimeSpan.FromSeconds(1),
        QueueLimit = 0,
        AutoReplenishment = true,
    };

    private static ApiCaller? Caller(HttpContext http) => (http.Items[ApiAuth.ResultKey] as ApiAuthResult)?.Caller;
}

/// <summary>
/// The per-tenant limits, taken after the membership check: a token bucket of requests per tenant, and a number of batch
/// requests a tenant may have running at once (so one tenant's imports cannot hold every database connection).
/// </summary>
internal sealed class ApiTenantLimits(ApiRateLimitSettings settings) : IDisposable
{
    private readonly PartitionedRateLimiter<Guid> _requests = PartitionedRateLimiter.Create<Guid, Guid>(tenant =>
        RateLimitPartition.GetTokenBucketLimiter(tenant, _ => ApiRateLimits.Bucket(settings.TenantPerSecond)));

    private readonly PartitionedRateLimiter<Guid> _batches = PartitionedRateLimiter.Create<Guid, Guid>(tenant =>
        RateLimitPartition.GetConcurrencyLimiter(tenant, _ => new ConcurrencyLimiterOptions { PermitLimit = settings.TenantBatches, QueueLimit = 0 }));

    public ApiRateLimitSettings Settings { get; } = settings;

    /// <summary>One of the tenant's requests; not acquired when its bucket is empty.</summary>
    public RateLimitLease AcquireRequest(Guid tenantId) => _requests.AttemptAcquire(tenantId);

    /// <summary>One of the tenant's batch slots, held until disposed; not acquired when all are taken.</summary>
    public RateLimitLease AcquireBatch(Guid tenantId) => _batches.AttemptAcquire(tenantId);

    public void Dispose()
    {
        _requests.Dispose();
        _batches.Dispose();
    }
}
