using System.Globalization;
using System.Text;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace Hourglass.Server.Cli;

internal static partial class StatusCommand
{
    /// <summary>
    /// Standard output as Spectre.Console sees it; when it is redirected (a file, a pipe, a test), plain text: no
    /// colours or cursor movement, Markdown tables, and wide enough that rows do not wrap.
    /// </summary>
    internal static IAnsiConsole CreateConsole()
    {
        if (!Console.IsOutputRedirected)
        {
            return AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Out) });
        }

        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(new PlainLines(Console.Out)),
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
        });
        console.Profile.Width = 240;
        return console;
    }

    /// <summary>
    /// Plain output's lines without trailing spaces, and without the lines of spaces Spectre draws for a Markdown
    /// table's invisible top and bottom borders: text for files, diffs and grep.
    /// </summary>
    private sealed class PlainLines(TextWriter inner) : TextWriter
    {
        private readonly StringBuilder _line = new();

        public override Encoding Encoding => inner.Encoding;

        public override void Write(char value)
        {
            if (value != '\n')
            {
                _line.Append(value);
                return;
            }

            var line = _line.ToString();
            _line.Clear();
            var text = line.TrimEnd(' ', '\r');
            if (text.Length > 0 || line.Length == 0)
            {
                inner.Write(text);
                inner.Write('\n');
            }
        }

        public override void Flush()
        {
            inner.Write(_line.ToString());
            _line.Clear();
            inner.Flush();
        }
    }

    internal static Table NewTable(params string[] columns)
    {
        var table = new Table { Border = Console.IsOutputRedirected ? TableBorder.Markdown : TableBorder.Rounded };
        foreach (var column in columns)
        {
            // A header starting with '>' is a column of numbers: right-aligned, and on a terminal its header takes a
            // line per word, so narrow numbers do not make a wide table. Plain output keeps one header line.
            table.AddColumn(column.StartsWith('>')
                ? new TableColumn(new Text(Console.IsOutputRedirected ? column[1..] : column[1..].Replace(' ', '\n'))) { Alignment = Justify.Right }
                : new TableColumn(new Text(column)));
        }

        return table;
    }

    // Cells are text, never markup: tenant names, reasons and errors may hold '[' and ']'.
    internal static void AddRow(Table table, params string[] cells) => table.AddRow(cells.Select(c => (IRenderable)new Text(c)));

    private static Text StatusText(string status) => new(status, status switch
    {
        "completed" => new Style(Color.Green),
        "partial" or "skipped" or "running" => new Style(Color.Yellow),
        "failed" or "abandoned" => new Style(Color.Red),
        _ => Style.Plain,
    });

    private static string N(long value) => value.ToString("N0", CultureInfo.InvariantCulture);

    private static string Percent(decimal? value) => value?.ToString("0.00", CultureInfo.InvariantCulture) ?? "-";

    private static string Time(DateTimeOffset? at) => at?.UtcDateTime.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture) ?? "-";

    private static string Ago(DateTimeOffset now, DateTimeOffset? at)
    {
        if (at is not { } then)
        {
            return "-";
        }

        var span = now - then;
        var text = Duration(span.Duration());
        return span < TimeSpan.Zero ? $"in {text}" : $"{text} ago";
    }

    private static string Duration(TimeSpan span) => span switch
    {
        { TotalSeconds: < 10 } => string.Create(CultureInfo.InvariantCulture, $"{span.TotalSeconds:0.0} s"),
        { TotalSeconds: < 60 } => string.Create(CultureInfo.InvariantCulture, $"{span.TotalSeconds:0} s"),
        { TotalMinutes: < 60 } => string.Create(CultureInfo.InvariantCulture, $"{span.TotalMinutes:0} min"),
        { TotalHours: < 48 } => string.Create(CultureInfo.InvariantCulture, $"{span.TotalHours:0.#} h"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{span.TotalDays:0.#} d"),
    };

    private static string Truncate(string text, int length) => text.Length <= length ? text : text[..(length - 1)] + "…";
}
