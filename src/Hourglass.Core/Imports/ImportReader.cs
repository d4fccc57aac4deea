using System.Globalization;
using System.Text;

namespace Hourglass.Imports;

/// <summary>
/// An import file as text, refused the moment it is read past its <see cref="ImportLimits"/>: a file larger than the
/// limit, or a line longer than its limit, ends the import with an error naming the limit and the line — before the
/// line is held in memory, so <c>/dev/zero</c> or one endless line stops after at most a line's limit. Lines end as
/// <see cref="StreamReader.ReadLine"/> ends them (<c>\n</c>, <c>\r\n</c> or <c>\r</c>), so line numbers are the readers'.
/// </summary>
internal sealed class ImportReader(TextReader inner, ImportLimits limits) : TextReader
{
    private readonly char[] _buffer = new char[1 << 16];
    private int _position;
    private int _length;

    // Counted as the text is read from the file: bytes so far, the line being read and its bytes so far.
    private long _bytes;
    private long _line = 1;
    private long _lineBytes;
    private bool _afterCarriageReturn;

    // ReadLine stopped at a '\r': a '\n' right after it belongs to the same line end.
    private bool _skipLineFeed;

    public override async ValueTask<string?> ReadLineAsync(CancellationToken cancellationToken)
    {
        StringBuilder? line = null;
        while (true)
        {
            if (_position == _length && !await FillAsync(cancellationToken))
            {
                return line?.ToString();
            }

            if (TakeLine(ref line) is { } text)
            {
                return text;
            }
        }
    }

    public override string? ReadLine()
    {
        StringBuilder? line = null;
        while (true)
        {
            if (_position == _length && !Fill())
            {
                return line?.ToString();
            }

            if (TakeLine(ref line) is { } text)
            {
                return text;
            }
        }
    }

    public override async Task<string> ReadToEndAsync(CancellationToken cancellationToken)
    {
        var text = new StringBuilder();
        do
        {
            SkipLineFeed();
            text.Append(_buffer, _position, _length - _position);
            _position = _length;
        }
        while (await FillAsync(cancellationToken));

        return text.ToString();
    }

    public override string ReadToEnd() => ReadToEndAsync(CancellationToken.None).GetAwaiter().GetResult();

    public override int Peek()
    {
        if (_position == _length && !Fill())
        {
            return -1;
        }

        SkipLineFeed();
        return _position < _length ? _buffer[_position] : Peek();
    }

    public override int Read()
    {
        var next = Peek();
        if (next >= 0)
        {
            _position++;
        }

        return next;
    }

    public override int Read(Span<char> buffer)
    {
        if (_position == _length && !Fill())
        {
            return 0;
        }

        SkipLineFeed();
        if (_position == _length)
        {
            return Read(buffer);
        }

        var count = Math.Min(buffer.Length, _length - _position);
        _buffer.AsSpan(_position, count).CopyTo(buffer);
        _position += count;
        return count;
    }

    public override int Read(char[] buffer, int index, int count) => Read(buffer.AsSpan(index, count));

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            inner.Dispose();
        }

        base.Dispose(disposing);
    }

    // The line in the buffer up to its end, or null (the buffer taken into 'line') when it goes on past the buffer.
    private string? TakeLine(ref StringBuilder? line)
    {
        SkipLineFeed();
        var rest = _buffer.AsSpan(_position, _length - _position);
        if (rest.IsEmpty)
        {
            return null;
        }

        var end = rest.IndexOfAny('\r', '\n');
        if (end < 0)
        {
            (line ??= new StringBuilder()).Append(rest);
            _position = _length;
            return null;
        }

        var text = line is null ? new string(rest[..end]) : line.Append(rest[..end]).ToString();
        _skipLineFeed = rest[end] == '\r';
        _position += end + 1;
        return text;
    }

    private void SkipLineFeed()
    {
        if (_skipLineFeed && _position < _length)
        {
            _skipLineFeed = false;
            if (_buffer[_position] == '\n')
            {
                _position++;
            }
        }
    }

    private async ValueTask<bool> FillAsync(CancellationToken cancellationToken)
    {
        _length = await inner.ReadAsync(_buffer.AsMemory(), cancellationToken);
        _position = 0;
        Count(_buffer.AsSpan(0, _length));
        return _length > 0;
    }

    private bool Fill()
    {
        _length = inner.Read(_buffer, 0, _buffer.Length);
        _position = 0;
        Count(_buffer.AsSpan(0, _length));
        return _length > 0;
    }

    private void Count(ReadOnlySpan<char> text)
    {
        while (!text.IsEmpty)
        {
            if (_afterCarriageReturn)
            {
                _afterCarriageReturn = false;
                if (text[0] == '\n')
                {
                    _bytes++;
                    text = text[1..];
                    continue;
                }
            }

            var end = text.IndexOfAny('\r', '\n');
            var bytes = Encoding.UTF8.GetByteCount(end < 0 ? text : text[..end]);
            _bytes += bytes;
            _lineBytes += bytes;
            if (_lineBytes > limits.MaxLineBytes)
            {
                throw new HourglassException(string.Create(CultureInfo.InvariantCulture,
                    $"--file: line {_line} is longer than {limits.MaxLineBytes} bytes, the limit ({ImportLimits.LineOption}); nothing was recorded"));
            }

            if (end >= 0)
            {
                _bytes++;
                _afterCarriageReturn = text[end] == '\r';
            }

            if (_bytes > limits.MaxFileBytes)
            {
                throw new HourglassException(string.Create(CultureInfo.InvariantCulture,
                    $"--file: larger than {limits.MaxFileBytes} bytes, the limit ({ImportLimits.FileOption}), at line {_line}; nothing was recorded"));
            }

            if (end < 0)
            {
                return;
            }

            _line++;
            _lineBytes = 0;
            text = text[(end + 1)..];
        }
    }
}
