using Hourglass.IntegrationTests.Infrastructure;
using Hourglass.Storage;

namespace Hourglass.IntegrationTests.Security;

/// <summary>
/// The policies are written "the fast way" (Supabase's RLS performance guide): the membership lookup is a scalar
/// sub-select, which PostgreSQL evaluates once per statement as an InitPlan instead of once per row.
/// </summary>
public sealed class PolicyShapeTests(TwoTenantFixture fixture) : IClassFixture<TwoTenantFixture>
{
    // The membership helper, or the capability helper of the write policies (tenant_ids_with('edit_crm'), …).
    private static readonly string[] s_scalarSubselects = ["( SELECT hourglass.current_tenant_ids()", "( SELECT hourglass.tenant_ids_with('"];

    public static TheoryData<string> Tables => TwoTenantFixture.Tables;

    private sealed record Policy(string Table, string Name, string[] Roles, string? Using, string? WithCheck);

    [Fact]
    public async Task Policies_ForAuthenticated_CallTenantHelperInScalarSubselect()
    {
        var policies = await PoliciesAsync();
        var problems = new List<string>();

        foreach (var table in SchemaContract.AllTables)
        {
            // A policy for PUBLIC applies to authenticated as well.
            var forUsers = policies.Where(p => p.Table == table && (p.Roles.Contains("authenticated") || p.Roles.Contains("public"))).ToList();
            if (forUsers.Count == 0)
            {
                problems.Add($"{table}: no policy for authenticated, so the test would check nothing");
            }

            foreach (var policy in forUsers)
            {
                var expressions = new[] { ("USING", policy.Using), ("WITH CHECK", policy.WithCheck) }.Where(e => e.Item2 is not null).ToList();
                if (expressions.Count == 0)
                {
                    problems.Add($"{table}.{policy.Name}: no expression at all");
                }

                foreach (var (clause, text) in expressions)
                {
                    if (!s_scalarSubselects.Any(helper => text!.Contains(helper, StringComparison.Ordinal)))
                    {
                        problems.Add($"{table}.{policy.Name} {clause} does not wrap its tenant helper in a scalar sub-select: {text}");
                    }

                    if (text!.Contains("auth.uid()", StringComparison.Ordinal))
                    {
                        problems.Add($"{table}.{policy.Name} {clause} calls auth.uid() per row: {text}");
                    }
                }
            }
        }

        Assert.Empty(problems);
    }

    [Theory]
    [MemberData(nameof(Tables))]
    public async Task Explain_UserSelectAll_TenantHelperIsInitPlanNotSubPlan(string table)
    {
        var plan = await fixture.Api.LinesAsync(fixture.A.User, $"explain select * from {SampleRow.Qualified(table)}");

        Assert.True(plan.Succeeded, $"{table}: explain as uA {plan}");
        var text = string.Join('\n', plan.Result!);
        Assert.Contains("InitPlan", text, StringComparison.Ordinal);
        Assert.DoesNotContain("SubPlan", text, StringComparison.Ordinal);
    }

    private async Task<List<Policy>> PoliciesAsync()
    {
        await using var connection = await fixture.DataSource.OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        // An empty search_path makes pg_get_expr (behind pg_policies) qualify every name, whatever the server's setting.
        await TestDb.ExecuteAsync(connection, transaction, "set local search_path = ''");
        await using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = """
            select tablename::text, policyname::text, roles::text[], qual, with_check
            from pg_catalog.pg_policies where schemaname = 'public' order by tablename, policyname
            """;
        await using var reader = await command.ExecuteReaderAsync();
        var policies = new List<Policy>();
        while (await reader.ReadAsync())
        {
            policies.Add(new Policy(reader.GetString(0), reader.GetString(1), reader.GetFieldValue<string[]>(2),
                reader.IsDBNull(3) ? null : reader.GetString(3), reader.IsDBNull(4) ? null : reader.GetString(4)));
        }

        return policies;
    }
}
