using System.Reflection;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Hourglass.Server.Api;

/// <summary>
/// The operations dashboard: static files embedded in the executable (no Node build to run it), served under
/// <c>/dashboard/</c>. The page signs in with a token and reads everything through the API, so it sees exactly what
/// its user may see.
/// </summary>
internal static class DashboardEndpoints
{
    private static readonly Dictionary<string, string> s_types = new(StringComparer.OrdinalIgnoreCase)
    {
        [".html"] = "text/html; charset=utf-8",
        [".js"] = "text/javascript; charset=utf-8",
        [".css"] = "text/css; charset=utf-8",
        [".svg"] = "image/svg+xml",
    };

    public static void MapDashboard(this IEndpointRouteBuilder app)
    {
        app.MapGet("/", () => Results.Redirect("/dashboard/"));
        app.MapGet("/dashboard/{**file}", (string? file, HttpContext http) =>
        {
            // The page talks to this server only: the browser enforces it.
            http.Response.Headers.ContentSecurityPolicy = "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'";
            http.Response.Headers.XContentTypeOptions = "nosniff";
            var name = string.IsNullOrEmpty(file) ? "index.html" : file;
            if (name.Contains("..", StringComparison.Ordinal) || name.Contains('\\', StringComparison.Ordinal))
            {
                return Results.NotFound();
            }

            var resource = Assembly.GetExecutingAssembly().GetManifestResourceStream("Dashboard/" + name);
            return resource is null
                ? Results.NotFound()
                : Results.Stream(resource, s_types.GetValueOrDefault(Path.GetExtension(name), "application/octet-stream"));
        }).ExcludeFromDescription();
    }
}
