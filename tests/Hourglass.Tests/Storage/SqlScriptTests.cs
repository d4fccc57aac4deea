using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Hourglass.Storage;

namespace Hourglass.Tests.Storage;

public sealed class SqlScriptTests
{
    [Fact]
    public void Split_PlainStatements_OnePerSemicolon()
    {
        Assert.Equal(["select 1", "select 2"], SqlScript.Split("select 1;\nselect 2;\n"));
    }

    [Fact]
    public void Split_LastStatementWithoutSemicolon_Kept()
    {
        Assert.Equal(["select 1", "select 2"], SqlScript.Split("select 1; select 2"));
    }

    [Fact]
    public void Split_SemicolonsInsideQuotesAndComments_DoNotSplit()
    {
        var script = """
            -- a comment; with a semicolon
            insert into t values ('a;b', 'it''s; fine', E'back\'slash;');
            /* block; /* nested; */ still comment; */
            select "odd;name" from t;
            """;

        var statements = SqlScript.Split(script);

        Assert.Equal(2, statements.Count);
        Assert.EndsWith("E'back\\'slash;')", statements[0], StringComparison.Ordinal);
        Assert.StartsWith("/* block;", statements[1], StringComparison.Ordinal);
        Assert.EndsWith("select \"odd;name\" from t", statements[1], StringComparison.Ordinal);
    }

    [Fact]
    public void Split_DollarQuotedBodies_KeptWhole()
    {
        var script = """
            create function f() returns int language plpgsql as $$
            begin
              perform 1; return 2;
            end $$;
            do $outer$ begin execute $inner$select 1; select 2$inner$; end $outer$;
            select $1::int, a$b from t;
            """;

        var statements = SqlScript.Split(script);

        Assert.Equal(3, statements.Count);
        Assert.Contains("perform 1; return 2;", statements[0], StringComparison.Ordinal);
        Assert.Contains("$inner$select 1; select 2$inner$", statements[1], StringComparison.Ordinal);
        Assert.Equal("select $1::int, a$b from t", statements[2]);
    }

    [Fact]
    public void Split_OnlyCommentsAndBlanks_NoStatements()
    {
        Assert.Empty(SqlScript.Split("-- nothing\n\n/* at all */ ;  ;\n"));
    }

    [Theory]
    [InlineData("select 'unterminated;", "unterminated string")]
    [InlineData("do $$ begin end;", "unterminated dollar-quoted string")]
    [InlineData("select 1 /* open", "unterminated /* comment")]
    [InlineData("select \"open", "unterminated quoted identifier")]
    public void Split_Unterminated_FormatExceptionSaysWhat(string script, string expected)
    {
        var ex = Assert.Throws<FormatException>(() => SqlScript.Split(script));
        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Split_RealMigrations_StatementCountsStable()
    {
        foreach (var migration in MigrationSource.Embedded())
        {
            Assert.NotEmpty(migration.Statements);
            Assert.All(migration.Statements, s => Assert.False(string.IsNullOrWhiteSpace(s)));
        }
    }

    // Any list of statements built from quoted strings, dollar-quoted bodies and comments that hold
    // semicolons comes back as the same list after joining with ';'.
    [Property(MaxTest = 300)]
    public Property Split_JoinedStatements_RoundTrip()
    {
        var fragment = Gen.Elements(
            "select 1", "'a;b'", "$$x; y$$", "$t$ ; $t$", "\"c;d\"", "-- note; here\n x", "/* a; b */ y", "E'\\';'", "f(2)");
        var statement = Gen.ListOf(fragment).Where(l => l.Count > 0).Select(l => string.Join(" ", l));
        return Prop.ForAll(Gen.ListOf(statement).Where(l => l.Count > 0).ToArbitrary(), statements =>
        {
            var script = string.Join(";\n", statements) + ";";
            var split = SqlScript.Split(script);
            return split.SequenceEqual(statements.Select(s => s.Trim()));
        });
    }
}
