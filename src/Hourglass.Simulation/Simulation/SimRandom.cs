namespace Hourglass.Simulation;

/// <summary>
/// Random draws addressed by what they are about (the seed, a purpose and the ids involved) instead of taken in
/// sequence from one generator: the world's choices do not depend on the order in which the database returns
/// rows or the cycles of several tenants finish, so the same seed gives the same world and the same report.
/// SplitMix64's finalizer (Steele, Lea, Flood 2014) mixes the parts.
/// </summary>
internal readonly struct SimRandom(long seed)
{
    public long Seed { get; } = seed;

    /// <summary>A uniform double in [0, 1) for these parts.</summary>
    public double Uniform(string purpose, long a = 0, long b = 0, long c = 0) =>
        (Hash(purpose, a, b, c) >> 11) * (1.0 / (1UL << 53));

    /// <summary>A uniform integer in [0, n).</summary>
    public int Next(int n, string purpose, long a = 0, long b = 0, long c = 0) => (int)(Uniform(purpose, a, b, c) * n);

    public bool Chance(double p, string purpose, long a = 0, long b = 0, long c = 0) => Uniform(purpose, a, b, c) < p;

    /// <summary>An exponential draw with the given mean.</summary>
    public double Exponential(double mean, string purpose, long a = 0, long b = 0, long c = 0) =>
        -mean * Math.Log(1 - Uniform(purpose, a, b, c));

    /// <summary>A generator for a long run of draws about one thing (e.g. one account's order dates).</summary>
    public Random Stream(string purpose, long a = 0, long b = 0) => new(unchecked((int)Hash(purpose, a, b, 0)));

    /// <summary>A version-4-shaped uuid that is the same for the same seed and parts.</summary>
    public Guid Id(string purpose, long a = 0, long b = 0)
    {
        Span<byte> bytes = stackalloc byte[16];
        BitConverter.TryWriteBytes(bytes, Hash(purpose, a, b, 1));
        BitConverter.TryWriteBytes(bytes[8..], Hash(purpose, a, b, 2));
        bytes[7] = (byte)((bytes[7] & 0x0F) | 0x40);
        bytes[8] = (byte)((bytes[8] & 0x3F) | 0x80);
        return new Guid(bytes);
    }

    /// <summary>A stable 64-bit number for a uuid, to address draws about database rows.</summary>
    public static long Key(Guid id)
    {
        Span<byte> bytes = stackalloc byte[16];
        id.TryWriteBytes(bytes);
        return BitConverter.ToInt64(bytes) ^ BitConverter.ToInt64(bytes[8..]);
    }

    private ulong Hash(string purpose, long a, long b, long c)
    {
        var h = Mix((ulong)Seed ^ PurposeHash(purpose));
        h = Mix(h ^ (ulong)a);
        h = Mix(h ^ (ulong)b);
        return Mix(h ^ (ulong)c);
    }

    // FNV-1a over the purpose's characters: stable across runs and machines (string.GetHashCode is randomized per process).
    private static ulong PurposeHash(string purpose)
    {
        var h = 0xCBF29CE484222325UL;
        foreach (var ch in purpose)
        {
            h = (h ^ ch) * 0x100000001B3UL;
        }

        return h;
    }

    private static ulong Mix(ulong z)
    {
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
