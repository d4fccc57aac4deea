using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace Hourglass.Server.Api;

/// <summary>
/// The OpenAPI document's security: the two ways <see cref="ApiAuth"/> takes a token, as security schemes, and every
/// API operation requiring one of them.
/// </summary>
internal static class ApiOpenApi
{
    public const string BearerScheme = "bearerAuth";

    public const string ApiKeyScheme = "apikey";

    /// <summary>Document transformer: declares the schemes (Microsoft.OpenApi 2: components hold <see cref="IOpenApiSecurityScheme"/>).</summary>
    public static Task AddSecuritySchemesAsync(OpenApiDocument document, OpenApiDocumentTransformerContext context, CancellationToken cancellationToken)
    {
        document.Components ??= new OpenApiComponents();
        document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>(StringComparer.Ordinal);
        document.Components.SecuritySchemes[BearerScheme] = new OpenApiSecurityScheme
        {
            Type = SecuritySchemeType.Http,
            Scheme = "bearer",
            BearerFormat = "JWT",
            Description = "A Supabase access token (role authenticated, sub the user, aud authenticated) or the service key (role service_role), signed ES256/RS256 with a key of the project's JWKS or HS256 with its legacy JWT secret.",
        };
        document.Components.SecuritySchemes[ApiKeyScheme] = new OpenApiSecurityScheme
        {
            Type = SecuritySchemeType.ApiKey,
            In = ParameterLocation.Header,
            Name = "apikey",
            Description = "The service key (role service_role) in the apikey header, as PostgREST takes it.",
        };
        return Task.CompletedTask;
    }

    /// <summary>Operation transformer of the API group: either scheme will do (two requirement objects are alternatives).</summary>
    public static Task RequireTokenAsync(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken cancellationToken)
    {
        operation.Security ??= [];
        operation.Security.Add(new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(BearerScheme, context.Document)] = [] });
        operation.Security.Add(new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(ApiKeyScheme, context.Document)] = [] });
        return Task.CompletedTask;
    }
}
