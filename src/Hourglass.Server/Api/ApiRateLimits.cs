using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.DependencyInjection;

namespace Hourglass.Server.Api;

/// <summary>
/// Per-tenant rate limits: a token bucket per tenant (the route's tenant, else the caller), refilled every second, so
/// one tenant's burst cannot starve the others; requests without a valid token are limited per client address. HOURGLASS_API_RATE_LIMIT sets the requests per second
/// (default 50, burst 100). Over the limit: 429 with Retry-After and a problem document.
/// </summary>
internal static class ApiRateLimits
{
    public const string PolicyName = "per-tenant";

    public static IServiceCollection AddHourglassRateLimits(this IServiceCollection services, ApiAuth? auth)
    {
        var perSecond = int.TryParse(Environment.GetEnvironmentVariable("HOURGLASS_API_RATE_LIMIT"), NumberStyles.None, CultureInfo.InvariantCulture, out var rate) && rate > 0
            ? rate
            : 50;
        return services.AddRateLimiter(options =>
        {
            options.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
            options.OnRejected = async (context, cancellationToken) =>
            {
                context.HttpContext.Response.Headers.RetryAfter = "1";
                await Results.Problem(title: "Too many requests", detail: $"more than {perSecond} requests a second for this tenant; retry after a second",
                    statusCode: StatusCodes.Status429TooManyRequests, type: "https://hourglass.dev/problems/rate-limited").ExecuteAsync(context.HttpContext);
            };
            options.AddPolicy(PolicyName, http =>
            {
                // Only an authenticated request counts against a tenant (or, off tenant routes, against its user): one
                // without a valid token is limited by its address, so nobody can spend a tenant's quota by knowing its id.
                var (caller, _) = auth?.Authenticate(http.Request.Headers.Authorization, http.Request.Headers["apikey"]) ?? (null, null);
                var key = caller is null
                    ? "unauthenticated:" + (http.Connection.RemoteIpAddress?.ToString() ?? "unknown")
                    : http.Request.RouteValues["tenantId"] as string is { } tenant
                        ? "tenant:" + tenant
                        : "caller:" + (caller.UserId?.ToString() ?? caller.Role);
                return RateLimitPartition.GetTokenBucketLimiter(key, _ => new TokenBucketRateLimiterOptions
                {
                    TokenLimit = perSecond * 2,
                    TokensPerPeriod = perSecond,
                    ReplenishmentPeriod = TimeSpan.FromSeconds(1),
                    QueueLimit = 0,
                    AutoReplenishment = true,
                });
            });
        });
    }
}
