using System.Globalization;
using System.Text;
using Hourglass.IntegrationTests.Infrastructure;

namespace Hourglass.IntegrationTests.Cli;

/// <summary>
/// The import commands' limits (docs/engagement.md, docs/insights.md): <c>/dev/zero</c>, one endless line or a file past
/// <c>--max-file-bytes</c> end with a one-line error naming the limit and the line, and nothing is written — on every
/// path (touches, events, events --bulk; NDJSON and CSV; a file and standard input). Text PostgreSQL cannot store is
/// that line's error.
/// </summary>
public sealed class ImportLimitTests : DatabaseTest
{
    private Guid _tenant;
    private Guid _contact;

    protected override async Task SeedAsync()
    {
        _tenant = await Db.CreateTenantAsync("Bounded Co");
        _contact = await Db.CreateContactAsync(_tenant, await Db.CreateAccountAsync(_tenant, "Initech"), "Pat Doe");
    }

    public static TheoryData<string, string> Paths => new()
    {
        { "touches import", "ndjson" },
        { "touches import", "csv" },
        { "events import", "ndjson" },
        { "events import", "csv" },
        { "events import --bulk", "ndjson" },
        { "events import --bulk", "csv" },
    };

    [Theory]
    [MemberData(nameof(Paths))]
    public async Task DevZero_RefusedAtTheLineLimit_OneLineNothingWritten(string command, string format)
    {
        var result = await RunAsync(command, "--file", "/dev/zero", "--format", format);

        AssertOneLineError(result, "--file: line 1 is longer than 1048576 bytes, the limit (--max-line-bytes); nothing was recorded");
        await AssertNothingWrittenAsync();
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public async Task OneHugeLine_RefusedNamingIt_TheLinesBeforeNotWritten(string command, string format)
    {
        var events = command.StartsWith("events", StringComparison.Ordinal);
        var good = Enumerable.Range(0, 2).Select(i => Line(events, format, $"k{i}")).ToList();
        var file = await WriteAsync(format, [.. Header(events, format), .. good, new string('x', 3000), Line(events, format, "after")]);
        try
        {
            var result = await RunAsync(command, "--file", file, "--max-line-bytes", "2048");

            var line = format == "csv" ? 4 : 3;
            AssertOneLineError(result, $"--file: line {line} is longer than 2048 bytes, the limit (--max-line-bytes); nothing was recorded");
            await AssertNothingWrittenAsync();
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public async Task FileOverTheSizeLimit_RefusedBeforeReading_StandardInputWhenReadPastIt(string command, string format)
    {
        var events = command.StartsWith("events", StringComparison.Ordinal);
        var lines = Header(events, format).Concat(Enumerable.Range(0, 40).Select(i => Line(events, format, $"k{i}"))).ToList();
        var file = await WriteAsync(format, [.. lines]);
        try
        {
            var size = new FileInfo(file).Length;
            var fromFile = await RunAsync(command, "--file", file, "--max-file-bytes", "1000");
            var fromInput = await RunWithInputAsync(command, string.Join('\n', lines) + "\n", "--file", "-", "--format", format, "--max-file-bytes", "1000");

            AssertOneLineError(fromFile, string.Create(CultureInfo.InvariantCulture,
                $"--file: '{file}' is {size} bytes, larger than the limit of 1000 (--max-file-bytes); nothing was recorded"));
            AssertOneLineError(fromInput, "--file: larger than 1000 bytes, the limit (--max-file-bytes), at line ");
            await AssertNothingWrittenAsync();
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task BulkEvents_HugeLineAfterAChunkWasWritten_RolledBackWhole()
    {
        // More than one chunk of the bulk path (50,000 lines) is written by COPY before the huge line is read.
        var lines = Enumerable.Range(0, 60_000).Select(i => Line(events: true, "ndjson", $"bulk-{i}")).Append(new string('x', 5000));
        var file = await WriteAsync("ndjson", [.. lines]);
        try
        {
            var result = await RunAsync("events import --bulk", "--file", file, "--max-line-bytes", "4096");

            AssertOneLineError(result, "--file: line 60001 is longer than 4096 bytes, the limit (--max-line-bytes); nothing was recorded");
            await AssertNothingWrittenAsync();
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Theory]
    [InlineData("--max-line-bytes", "0")]
    [InlineData("--max-file-bytes", "-1")]
    public async Task LimitNotPositive_OneLineError(string option, string value)
    {
        var result = await RunAsync("touches import", "--file", "/dev/null", "--format", "ndjson", option, value);

        AssertOneLineError(result, $"{option} must be a positive number of bytes (got {value})");
    }

    [Theory]
    [InlineData("ndjson")]
    [InlineData("csv")]
    public async Task TouchLineWithNul_RefusedNamingTheLineAndField_SkipRecordsTheRest(string format)
    {
        var bad = format == "csv" ? $"contact,{_contact},email,\"a\u0000b\"" : $$"""{"entity_type":"contact","entity_id":"{{_contact}}","touch_type":"email","touch_by":"a\u0000b"}""";
        var file = await WriteAsync(format, [.. Header(events: false, format), Line(events: false, format, "first"), bad]);
        try
        {
            var refused = await RunAsync("touches import", "--file", file);
            var skipped = await RunAsync("touches import", "--file", file, "--on-error", "skip");

            var line = format == "csv" ? 3 : 2;
            AssertOneLineError(refused, $"line {line}: touch_by: holds the character U+0000 (NUL), which PostgreSQL cannot store");
            Assert.Equal(3, skipped.ExitCode);
            Assert.Contains($"  line {line}: touch_by: holds the character U+0000", skipped.StandardOutput, StringComparison.Ordinal);
            Assert.Equal(1L, await Db.ScalarAsync("select count(*) from public.warehouse_events where tenant_id = $1", _tenant));
        }
        finally
        {
            File.Delete(file);
        }
    }

    private static void AssertOneLineError(HourglassProcess.Result result, string expected)
    {
        Assert.True(result.ExitCode == 1, $"exit {result.ExitCode}: {result.StandardError}");
        Assert.Contains(expected, result.StandardError, StringComparison.Ordinal);
        Assert.Single(result.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.DoesNotContain("   at ", result.StandardError, StringComparison.Ordinal);
    }

    private async Task AssertNothingWrittenAsync() =>
        Assert.Equal(0L, await Db.ScalarAsync("select count(*) from public.warehouse_events where tenant_id = $1", _tenant));

    private Task<HourglassProcess.Result> RunAsync(string command, params string[] arguments) => RunWithInputAsync(command, null, arguments);

    private Task<HourglassProcess.Result> RunWithInputAsync(string command, string? standardInput, params string[] arguments)
    {
        string[] all = [.. command.Split(' '), "--tenant", "Bounded Co", .. arguments, "--database", ConnectionString];
        return standardInput is null ? HourglassProcess.RunAsync(all) : HourglassProcess.RunAsync(all, standardInput);
    }

    private static IEnumerable<string> Header(bool events, string format) =>
        format != "csv" ? [] : [events ? "event_type,entity_type,entity_id,idempotency_key" : "entity_type,entity_id,touch_type,touch_by"];

    private string Line(bool events, string format, string key) => (events, format) switch
    {
        (true, "csv") => $"reply,contact,{_contact},{key}",
        (true, _) => $$"""{"event_type":"reply","entity_type":"contact","entity_id":"{{_contact}}","idempotency_key":"{{key}}"}""",
        (false, "csv") => $"contact,{_contact},email,{key}",
        _ => $$"""{"entity_type":"contact","entity_id":"{{_contact}}","touch_type":"email","touch_by":"{{key}}"}""",
    };

    private static async Task<string> WriteAsync(string format, params string[] lines)
    {
        var file = Path.Combine(Path.GetTempPath(), $"import-{Guid.NewGuid():N}.{format}");
        await File.WriteAllTextAsync(file, string.Join('\n', lines) + "\n", new UTF8Encoding(false));
        return file;
    }
}
