using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Hourglass.Imports;

namespace Hourglass.Tests.Imports;

public sealed class ImportReaderTests
{
    private static readonly ImportLimits s_roomy = new(1L << 20, 1 << 16);

    // Any text of short lines, with every kind of line end and chunks cut anywhere, reads line by line as StreamReader
    // reads it: the readers number lines the same with or without the limits.
    [Property(MaxTest = 300)]
    public Property ReadLine_AnyLineEnds_SameLinesAsStreamReader()
    {
        var piece = Gen.Elements("a", "{\"x\": 1}", "é", "😀", "\r", "\n", "\r\n", "", " ");
        return Prop.ForAll(Gen.ListOf(piece).Select(l => string.Concat(l)).ToArbitrary(), text =>
        {
            var expected = Lines(new StringReader(text));
            using var bounded = new ImportReader(new StringReader(text), s_roomy);
            return expected.SequenceEqual(Lines(bounded));
        });
    }

    [Fact]
    public async Task ReadLineAsync_LinesLongerThanTheBuffer_ComeBackWhole()
    {
        var long1 = new string('x', 200_000);
        var text = $"{long1}\r\nshort\n{long1}é";
        using var reader = new ImportReader(new StringReader(text), new ImportLimits(1L << 30, 1 << 20));

        Assert.Equal(long1, await reader.ReadLineAsync(CancellationToken.None));
        Assert.Equal("short", await reader.ReadLineAsync(CancellationToken.None));
        Assert.Equal(long1 + "é", await reader.ReadLineAsync(CancellationToken.None));
        Assert.Null(await reader.ReadLineAsync(CancellationToken.None));
    }

    [Fact]
    public async Task ReadToEndAsync_WithinLimits_TheWholeText()
    {
        var text = "a,b\r\n\"x\ny\",z\n";
        using var reader = new ImportReader(new StringReader(text), s_roomy);

        Assert.Equal(text, await reader.ReadToEndAsync(CancellationToken.None));
    }

    [Theory]
    [InlineData(10, true)]
    [InlineData(11, false)]
    public async Task ReadLineAsync_LineAtAndPastTheLimit_PastIsRefusedNamingTheLineAndLimit(int length, bool taken)
    {
        // Bytes of UTF-8, not characters: 'é' is two.
        var line = new string('é', length / 2) + (length % 2 == 1 ? "x" : "");
        using var reader = new ImportReader(new StringReader($"ok\nok\n{line}\nok\n"), new ImportLimits(1000, 10));
        var lines = new List<string>();

        // The limits are applied as the text is read ahead, so the error may come before the lines in front of it.
        var error = await Record.ExceptionAsync(async () =>
        {
            while (await reader.ReadLineAsync(CancellationToken.None) is { } next)
            {
                lines.Add(next);
            }
        });

        if (taken)
        {
            Assert.Null(error);
            Assert.Equal(["ok", "ok", line, "ok"], lines);
        }
        else
        {
            Assert.Equal("--file: line 3 is longer than 10 bytes, the limit (--max-line-bytes); nothing was recorded", Assert.IsType<HourglassException>(error).Message);
        }
    }

    [Fact]
    public async Task ReadToEndAsync_OneEndlessLine_RefusedAfterTheLineLimitNotTheFile()
    {
        // /dev/zero: NULs without end. The reader stops within one buffer past the line limit.
        var zeros = new EndlessReader();
        using var reader = new ImportReader(zeros, new ImportLimits(long.MaxValue, 1 << 20));

        var error = await Assert.ThrowsAsync<HourglassException>(() => reader.ReadToEndAsync(CancellationToken.None));

        Assert.StartsWith("--file: line 1 is longer than 1048576 bytes", error.Message, StringComparison.Ordinal);
        Assert.InRange(zeros.CharactersRead, (1 << 20) + 1, (1 << 20) + (1 << 16));
    }

    [Fact]
    public async Task ReadLineAsync_FileLargerThanItsLimit_RefusedNamingTheLimitAndTheLine()
    {
        using var reader = new ImportReader(new StringReader(string.Concat(Enumerable.Repeat("0123456789\n", 100))), new ImportLimits(500, 100));

        var error = await Assert.ThrowsAsync<HourglassException>(async () =>
        {
            while (await reader.ReadLineAsync(CancellationToken.None) is not null)
            {
            }
        });

        // 45 lines of 11 bytes are 495; the 46th line's text takes it past 500.
        Assert.Equal("--file: larger than 500 bytes, the limit (--max-file-bytes), at line 46; nothing was recorded", error.Message);
    }

    private static List<string> Lines(TextReader reader)
    {
        var lines = new List<string>();
        while (reader.ReadLine() is { } line)
        {
            lines.Add(line);
        }

        return lines;
    }

    private sealed class EndlessReader : TextReader
    {
        public long CharactersRead { get; private set; }

        public override int Read(char[] buffer, int index, int count)
        {
            Array.Clear(buffer, index, count);
            CharactersRead += count;
            return count;
        }

        public override ValueTask<int> ReadAsync(Memory<char> buffer, CancellationToken cancellationToken = default)
        {
            buffer.Span.Clear();
            CharactersRead += buffer.Length;
            return ValueTask.FromResult(buffer.Length);
        }
    }
}
