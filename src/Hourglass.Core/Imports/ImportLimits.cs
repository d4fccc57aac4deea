namespace Hourglass.Imports;

/// <summary>
/// The limits of a file import (<c>touches import</c>, <c>events import</c>), in bytes of UTF-8: the whole input and
/// each line. Defaults: 1 GiB and 1 MiB — a few million touches or events, and far more than any one of them needs.
/// </summary>
internal sealed record ImportLimits(long MaxFileBytes, int MaxLineBytes)
{
    public const string FileOption = "--max-file-bytes";

    public const string LineOption = "--max-line-bytes";

    public const long DefaultMaxFileBytes = 1L << 30;

    public const int DefaultMaxLineBytes = 1 << 20;

    public static readonly ImportLimits Default = new(DefaultMaxFileBytes, DefaultMaxLineBytes);
}
