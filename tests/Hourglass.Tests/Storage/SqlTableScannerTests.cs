namespace Hourglass.Tests.Storage;

/// <summary>The table-ownership check itself: what it counts as a table named in SQL, and what it says.</summary>
public sealed class SqlTableScannerTests
{
    private const string OrderStore = "src/Hourglass.Core/Orders/OrderStore.cs";

    private static readonly Dictionary<string, TableOwner> s_owners = new(StringComparer.Ordinal)
    {
        ["public.orders"] = new("public.orders", "Orders", [OrderStore]),
        ["public.order_lines"] = new("public.order_lines", "Orders", [OrderStore]),
        ["hourglass.timezones"] = new("hourglass.timezones", "Tenancy", ["src/Hourglass.Core/Tenancy/TenancyStore.cs"]),
        ["public.agent_actions"] = new("public.agent_actions", "Cycles", []),
    };

    [Fact]
    public void Violations_PlantedStatementOutsideTheStore_NamesFileLineTableOwnerAndStore()
    {
        const string source = """
            class Planted
            {
                const string Sql = "select id from public.orders where tenant_id = $1";
            }
            """;

        var violation = Assert.Single(TableOwnershipTests.Violations("src/Hourglass.Server/Cli/Planted.cs", source, s_owners));

        Assert.Equal("src/Hourglass.Server/Cli/Planted.cs", violation.File);
        Assert.Equal("public.orders", violation.Table);
        Assert.Equal(
            "src/Hourglass.Server/Cli/Planted.cs:3: names public.orders, owned by Orders; " +
            "move this into src/Hourglass.Core/Orders/OrderStore.cs and call the store from here",
            violation.Message);
    }

    [Fact]
    public void Violations_SameStatementInTheOwnersStore_None()
    {
        const string source = """class S { const string Sql = "select id from public.orders"; }""";

        Assert.Empty(TableOwnershipTests.Violations(OrderStore, source, s_owners));
    }

    [Theory]
    [InlineData("raw", "var sql = \"\"\"\n    select o.id\n    from orders o join order_lines l on l.order_id = o.id\n    \"\"\";", 3)]
    [InlineData("verbatim", "var sql = @\"insert into public.order_lines (order_id)\nvalues ($1)\";", 1)]
    [InlineData("interpolated", "var sql = $\"update orders set status = {status} where id = $1\";", 1)]
    [InlineData("raw interpolated", "var sql = $\"\"\"\n    delete from public.orders where id = {id}\n    \"\"\";", 2)]
    [InlineData("escape before the name", "var sql = \"select 1\\nfrom orders\";", 1)]
    [InlineData("upper case", "var sql = \"SELECT * FROM ORDERS\";", 1)]
    [InlineData("hourglass schema", "var sql = \"select name from hourglass.timezones\";", 1)]
    [InlineData("copy", "var sql = \"copy public.order_lines (order_id, sku) from stdin (format binary)\";", 1)]
    public void Scan_StringLiteralsOfEveryKind_FindTheTable(string kind, string statement, int line)
    {
        var source = "class C\n{\n    void M(string status, int id)\n    {\n" + statement + "\n    }\n}";

        var mentions = SqlTableScanner.Scan(source, s_owners.Keys.ToList());

        Assert.True(mentions.Count > 0, kind);
        Assert.Equal(4 + line, mentions[0].Line);
    }

    [Theory]
    [InlineData("line comment", "// select id from public.orders where tenant_id = $1")]
    [InlineData("block comment", "/* delete from orders */ var x = 1;")]
    [InlineData("log message", "logger.LogInformation(\"Claimed {Count} orders from the queue for {Tenant}\", 3, t);")]
    [InlineData("sentence with keywords", "var help = \"Delete from orders the ones already shipped.\";")]
    [InlineData("help text", "var help = \"Lists the orders and their order_lines.\";")]
    [InlineData("column of an alias", "var sql = \"select o.orders from public.tenant_stats o\";")]
    [InlineData("longer name", "var sql = \"select id from public.orders_archive\";")]
    [InlineData("identifier, not a literal", "var orders = Load(\"select 1 from dual\");")]
    [InlineData("unqualified name of the hourglass schema", "var sql = \"select name from timezones\";")]
    public void Scan_NotSqlOrNotTheTable_FindsNothing(string kind, string statement)
    {
        var source = "class C\n{\n    void M()\n    {\n" + statement + "\n    }\n}";

        Assert.True(SqlTableScanner.Scan(source, s_owners.Keys.ToList()).Count == 0, kind);
    }

    [Fact]
    public void Violations_JoinAcrossPartsInOneOwnersStore_None_AloneOutsideItsOwner_Caught()
    {
        const string join = """class S { const string Sql = "select o.id, z.name from public.orders o join hourglass.timezones z on z.name = o.zone"; }""";
        const string alone = """class S { const string Sql = "select name from hourglass.timezones"; }""";

        Assert.Empty(TableOwnershipTests.Violations(OrderStore, join, s_owners));
        Assert.Equal("hourglass.timezones", Assert.Single(TableOwnershipTests.Violations(OrderStore, alone, s_owners)).Table);
    }

    [Fact]
    public void Violations_StatementAlsoNamingAPendingTable_LeftForItsOwner()
    {
        const string source = """class S { const string Sql = "select a.id from public.agent_actions a join public.orders o on o.id = a.order_id"; }""";

        Assert.Empty(TableOwnershipTests.Violations("src/Hourglass.Server/Api/X.cs", source, s_owners));
    }

    [Fact]
    public void Parse_MapBetweenMarkers_ReadsOwnersPendingRowsAndBaselines()
    {
        const string markdown = """
            text before | not a table
            <!-- table-owners -->
            | Table | Owning part | Store file(s) |
            |---|---|---|
            | `public.orders` | Orders | `src/A.cs`, `src/B.cs` |
            | `public.agent_actions` | Cycles | pending |

            | Baseline file | Why it keeps raw SQL |
            |---|---|
            | `bench/X.cs` | the hand-written SQL the product is measured against |
            <!-- /table-owners -->
            """;

        var map = OwnershipMap.Parse(markdown);

        Assert.Equal(2, map.Tables.Count);
        Assert.Equal(["src/A.cs", "src/B.cs"], map.Tables[0].StoreFiles);
        Assert.Equal("orders", map.Tables[0].BareName);
        Assert.True(map.Tables[1].Pending);
        Assert.Equal("bench/X.cs", Assert.Single(map.Baselines).File);
    }

    // SQL functions a part owns: a call outside the owner's store is caught like a table; its name elsewhere is not a call.

    private static readonly Dictionary<string, TableOwner> s_functionOwners = new(StringComparer.Ordinal)
    {
        ["public.orders"] = new("public.orders", "Orders", [OrderStore]),
        ["public.claim_orders()"] = new("public.claim_orders()", "Orders", [OrderStore]),
        ["hourglass.touch_candidates()"] = new("hourglass.touch_candidates()", "Engagement", ["src/Hourglass.Core/Engagement/EngagementStore.cs"]),
    };

    [Theory]
    [InlineData("select of a call", "class S { const string Sql = \"select public.claim_orders($1, $2, $3, $4)\"; }", "public.claim_orders()")]
    [InlineData("unqualified public call", "class S { const string Sql = \"select * from claim_orders ($1)\"; }", "public.claim_orders()")]
    [InlineData("hourglass call in a join", "class S { const string Sql = \"select q.* from hourglass.touch_candidates($1, $2, true) q\"; }", "hourglass.touch_candidates()")]
    public void Violations_FunctionCalledOutsideItsStore_NamesTheFunction(string kind, string source, string function)
    {
        var violation = Assert.Single(TableOwnershipTests.Violations("src/Hourglass.Server/Cli/Planted.cs", source, s_functionOwners));

        Assert.True(violation.Table == function, kind);
        Assert.Contains($"names {function}, owned by", violation.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("in its store", OrderStore, "class S { const string Sql = \"select c.* from public.claim_orders($1, $2, $3, $4) c\"; }")]
    [InlineData("with a table of its owner's, in that store", OrderStore, "class S { const string Sql = \"select o.id from public.orders o join claim_orders($1) c on c.order_id = o.id\"; }")]
    [InlineData("named, not called", "src/X.cs", "class S { const string Sql = \"select 1 from public.tenants where note = 'claim_orders is the claim'\"; }")]
    [InlineData("inside a SQL string", "src/X.cs", "class S { const string Sql = \"select hourglass.assert_tenant_access($1, 'claim_orders (bulk)') from public.tenants\"; }")]
    [InlineData("a column of that name", "src/X.cs", "class S { const string Sql = \"select x.claim_orders from public.tenants x\"; }")]
    [InlineData("not SQL", "src/X.cs", "class S { const string Help = \"Runs claim_orders (the queue's claim).\"; }")]
    public void Violations_FunctionInItsStoreOrNotCalled_None(string kind, string file, string source)
    {
        Assert.True(!TableOwnershipTests.Violations(file, source, s_functionOwners).Any(), kind);
    }

    [Fact]
    public void Parse_FunctionRows_ReadAsFunctions()
    {
        const string markdown = """
            <!-- table-owners -->
            | Table | Owning part | Store file(s) |
            |---|---|---|
            | `public.orders` | Orders | `src/A.cs` |

            | Function | Owning part | Store file(s) |
            |---|---|---|
            | `public.claim_orders()` | Orders | `src/A.cs` |
            <!-- /table-owners -->
            """;

        var map = OwnershipMap.Parse(markdown);

        Assert.Equal("public.orders", Assert.Single(map.Tables).Table);
        var function = Assert.Single(map.Functions);
        Assert.True(function.IsFunction);
        Assert.Equal(["src/A.cs"], function.StoreFiles);
    }
}
