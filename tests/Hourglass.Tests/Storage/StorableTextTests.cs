using System.Text.Json;
using Hourglass.Storage;

namespace Hourglass.Tests.Storage;

public sealed class StorableTextTests
{
    [Theory]
    [InlineData("plain", null)]
    [InlineData("emoji 😀 and é", null)]
    [InlineData("a\0b", StorableText.NulProblem)]
    public void Problem_Text_NamesWhatPostgresCannotStore(string text, string? problem)
    {
        Assert.Equal(problem, StorableText.Problem(text));
    }

    [Fact]
    public void Problem_UnpairedSurrogates_Named()
    {
        // Built here: an attribute's string argument cannot carry a lone surrogate.
        foreach (var text in new[] { "\ud800", $"x{(char)0xDC00}y", $"{(char)0xD83D}", $"{(char)0xDE00}{(char)0xD83D}" })
        {
            Assert.Equal(StorableText.SurrogateProblem, StorableText.Problem(text));
        }
    }

    [Theory]
    [InlineData("""{"a": "ok", "b": [1, {"c": "x\u0000"}]}""", "b[1].c", StorableText.NulProblem)]
    [InlineData("""["ok", "\ud800"]""", "[1]", StorableText.SurrogateProblem)]
    [InlineData("""{"n\u0000me": 1}""", "$", "has a field name that " + StorableText.NulProblem)]
    [InlineData("\"\\u0000\"", "$", StorableText.NulProblem)]
    public void Find_Json_ThePathOfTheFirstBadString(string json, string path, string problem)
    {
        using var document = JsonDocument.Parse(json);

        Assert.Equal((path, problem), StorableText.Find(document.RootElement));
    }

    [Fact]
    public void Find_CleanJson_Nothing()
    {
        using var document = JsonDocument.Parse("""{"a": ["é", 1, null, true, {"b": "\u00e9\ud83d\ude00"}]}""");

        Assert.Null(StorableText.Find(document.RootElement));
    }
}
