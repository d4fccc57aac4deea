using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.IdentityModel.Tokens;

namespace Hourglass.Server.Api;

/// <summary>When a JWKS is read again: periodically, and on a token whose <c>kid</c> it lacks (at most once per cool-down).</summary>
internal sealed record JwksRefresh(TimeSpan Every, TimeSpan UnknownKidCooldown)
{
    public static readonly JwksRefresh Default = new(TimeSpan.FromMinutes(10), TimeSpan.FromSeconds(30));
}

/// <summary>
/// The asymmetric keys user tokens are signed with, read from a JWKS (RFC 7517) — Supabase publishes its project's at
/// <c>https://&lt;project-ref&gt;.supabase.co/auth/v1/.well-known/jwks.json</c> — or from a file. Parsing and key
/// construction are Microsoft.IdentityModel's (<see cref="JsonWebKeySet"/>); this class only decides when to read the set
/// again: every <see cref="JwksRefresh.Every"/>, and when a token names a <c>kid</c> the set lacks (a rotation), at most
/// once per <see cref="JwksRefresh.UnknownKidCooldown"/>, so a flood of tokens with made-up kids costs the JWKS endpoint
/// one request per cool-down, not one per token. Only EC P-256 and RSA signing keys are kept (ES256, RS256).
/// </summary>
internal sealed partial class JwksKeys
{
    // A JWKS is a few keys; anything much larger is not one.
    private const int MaxBytes = 1 << 20;

    private readonly Func<CancellationToken, Task<string>> _read;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _fetching = new(1, 1);
    private volatile IReadOnlyList<SecurityKey> _keys = [];
    private DateTimeOffset? _lastUnknownKidFetch;
    private long _fetches;

    private JwksKeys(string source, Func<CancellationToken, Task<string>> read, JwksRefresh refresh, TimeProvider time, ILogger logger)
    {
        Source = source;
        _read = read;
        Refresh = refresh;
        _time = time;
        _logger = logger;
    }

    /// <summary>Where the keys come from, for messages: the URL or the file.</summary>
    public string Source { get; }

    public JwksRefresh Refresh { get; }

    /// <summary>The keys in force.</summary>
    public IReadOnlyList<SecurityKey> Keys => _keys;

    /// <summary>How many times the set was read and put in force (start-up included).</summary>
    public long Fetches => Interlocked.Read(ref _fetches);

    /// <summary>Keys served over HTTP(S). The client is the caller's; it should time out in seconds.</summary>
    public static JwksKeys FromUrl(Uri url, HttpClient http, JwksRefresh refresh, TimeProvider time, ILogger? logger = null) =>
        new(url.ToString(), async cancellationToken =>
        {
            using var response = await http.GetAsync(url, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
            if (!response.IsSuccessStatusCode)
            {
                throw new HourglassException($"HTTP {(int)response.StatusCode} {response.ReasonPhrase}");
            }

            if (response.Content.Headers.ContentLength > MaxBytes)
            {
                throw new HourglassException($"the response is larger than {MaxBytes} bytes");
            }

            await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
            using var reader = new StreamReader(stream);
            var buffer = new char[MaxBytes + 1];
            var length = await reader.ReadBlockAsync(buffer, cancellationToken);
            return length > MaxBytes ? throw new HourglassException($"the response is larger than {MaxBytes} bytes") : new string(buffer, 0, length);
        }, refresh, time, logger ?? NullLogger.Instance);

    /// <summary>Keys in a file, read again on the same schedule (replace the file to rotate).</summary>
    public static JwksKeys FromFile(string path, JwksRefresh refresh, TimeProvider time, ILogger? logger = null) =>
        new(path, async cancellationToken =>
        {
            var info = new FileInfo(path);
            return !info.Exists ? throw new HourglassException("no such file")
                : info.Length > MaxBytes ? throw new HourglassException($"the file is larger than {MaxBytes} bytes")
                : await File.ReadAllTextAsync(path, cancellationToken);
        }, refresh, time, logger ?? NullLogger.Instance);

    /// <summary>
    /// Reads the set at start-up. Throws <see cref="HourglassException"/> with one line naming <paramref name="setting"/>
    /// and what went wrong when it cannot be read or is not a JWKS.
    /// </summary>
    public async Task LoadAsync(string setting, CancellationToken cancellationToken)
    {
        try
        {
            await FetchAsync(cancellationToken);
        }
        catch (Exception ex) when (ex is HourglassException or HttpRequestException or IOException or UnauthorizedAccessException or ArgumentException
                                       or TaskCanceledException && !cancellationToken.IsCancellationRequested)
        {
            throw new HourglassException($"{setting}: cannot read the JWKS at {Source}: {Describe(ex)}", ex);
        }

        if (_keys.Count == 0)
        {
            LogNoKeys(_logger, Source);
        }
    }

    /// <summary>The keys that may have signed a token with <paramref name="kid"/> (all of them for a token without one).</summary>
    public IEnumerable<SecurityKey> Find(string? kid) => kid is null ? _keys : _keys.Where(k => string.Equals(k.KeyId, kid, StringComparison.Ordinal));

    public bool Has(string kid) => _keys.Any(k => string.Equals(k.KeyId, kid, StringComparison.Ordinal));

    /// <summary>
    /// A token names a kid the set lacks: read the set again, unless an unknown kid already caused a read within the
    /// cool-down (then the token is judged on the keys in force). Concurrent callers share one read.
    /// </summary>
    public async Task RefetchForUnknownKidAsync(string kid, CancellationToken cancellationToken)
    {
        await _fetching.WaitAsync(cancellationToken);
        try
        {
            var now = _time.GetUtcNow();
            if (Has(kid) || (_lastUnknownKidFetch is { } last && now - last < Refresh.UnknownKidCooldown))
            {
                return;
            }

            _lastUnknownKidFetch = now;
            await FetchLockedAsync(cancellationToken);
        }
        catch (Exception ex) when (ex is HourglassException or HttpRequestException or IOException or UnauthorizedAccessException or ArgumentException
                                       or TaskCanceledException && !cancellationToken.IsCancellationRequested)
        {
            // The keys in force stay in force; the token is judged on them.
            LogRefreshFailed(_logger, Source, Describe(ex));
        }
        finally
        {
            _fetching.Release();
        }
    }

    /// <summary>Reads the set every <see cref="JwksRefresh.Every"/> until cancelled; a failed read keeps the keys in force.</summary>
    public async Task RunRefreshLoopAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(Refresh.Every, _time, cancellationToken);
                await FetchAsync(cancellationToken);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is HourglassException or HttpRequestException or IOException or UnauthorizedAccessException or ArgumentException
                                           or TaskCanceledException)
            {
                LogRefreshFailed(_logger, Source, Describe(ex));
            }
        }
    }

    private async Task FetchAsync(CancellationToken cancellationToken)
    {
        await _fetching.WaitAsync(cancellationToken);
        try
        {
            await FetchLockedAsync(cancellationToken);
        }
        finally
        {
            _fetching.Release();
        }
    }

    private async Task FetchLockedAsync(CancellationToken cancellationToken)
    {
        var json = await _read(cancellationToken);
        _keys = Usable(json);
        Interlocked.Increment(ref _fetches);
    }

    /// <summary>The ES256 and RS256 signing keys of a JWKS document; throws <see cref="HourglassException"/> when it is not one.</summary>
    internal static IReadOnlyList<SecurityKey> Usable(string json)
    {
        JsonWebKeySet set;
        try
        {
            set = JsonWebKeySet.Create(json);
        }
        catch (ArgumentException ex)
        {
            throw new HourglassException($"not a JWKS document ({ex.Message.Split('\n')[0].Trim()})", ex);
        }

        // A symmetric ("oct") key has no business in a published set, and a key for encryption is not for signatures.
        return set.Keys
            .Where(k => k.Use is null or "" or JsonWebKeyUseNames.Sig)
            .Where(k => (k.Kty == JsonWebAlgorithmsKeyTypes.EllipticCurve && k.Crv == JsonWebKeyECTypes.P256 && k.Alg is null or "" or SecurityAlgorithms.EcdsaSha256)
                        || (k.Kty == JsonWebAlgorithmsKeyTypes.RSA && k.Alg is null or "" or SecurityAlgorithms.RsaSha256))
            // A published set holds public keys only; one with a private part was published by mistake.
            .Where(k => !k.HasPrivateKey)
            .Cast<SecurityKey>()
            .ToList();
    }

    private static string Describe(Exception ex) => (ex switch
    {
        TaskCanceledException => "timed out",
        HttpRequestException { InnerException: { } inner } => inner.Message,
        _ => ex.Message,
    }).Split('\n')[0].Trim();

    [LoggerMessage(Level = LogLevel.Warning, Message = "The JWKS at {Source} has no ES256 or RS256 signing keys: only HS256 tokens (HOURGLASS_JWT_SECRET) can be accepted until it does")]
    private static partial void LogNoKeys(ILogger logger, string source);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not read the JWKS at {Source} again ({Reason}); the keys read before stay in force")]
    private static partial void LogRefreshFailed(ILogger logger, string source, string reason);
}
