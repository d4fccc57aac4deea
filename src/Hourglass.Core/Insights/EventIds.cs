using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Hourglass.Insights;

/// <summary>
/// Ids for a batch of new events: version-7 uuids (RFC 9562) with the batch's time and a counter in the 32 bits after
/// it (method 1, "fixed bit-length dedicated counter"), the remaining 42 bits random. Increasing within the batch, so a
/// million new rows append to the primary key's index instead of splitting pages all over it; unique across batches by
/// the random bits. One call to the random source for the whole batch (Guid.CreateVersion7 makes one per id).
/// </summary>
internal static class EventIds
{
    public static Guid[] Create(int count, DateTime time, int firstCounter = 0)
    {
        var ids = new Guid[count];
        var random = new byte[count * 16];
        RandomNumberGenerator.Fill(random);
        var milliseconds = (ulong)new DateTimeOffset(time).ToUnixTimeMilliseconds();
        Span<byte> bytes = stackalloc byte[16];
        for (var i = 0; i < count; i++)
        {
            var counter = (uint)(firstCounter + i);
            random.AsSpan(i * 16, 16).CopyTo(bytes);
            BinaryPrimitives.WriteUInt64BigEndian(bytes, (milliseconds << 16) | 0x7000u | (counter >> 20));   // time, version 7, counter's top 12 bits
            bytes[8] = (byte)(0x80 | ((counter >> 14) & 0x3F));                                               // variant 10, the counter's next 6 bits
            bytes[9] = (byte)(counter >> 6);                                                                 // and its next 8
            bytes[10] = (byte)((counter << 2) | (bytes[10] & 0x03u));                                        // and its last 6; then random
            ids[i] = new Guid(bytes, bigEndian: true);
        }

        return ids;
    }
}
