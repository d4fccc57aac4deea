import re
# One-off (issue 16): splits src/Hourglass.Server/Cli/StatusCommand.cs, as it stood in one file, into StatusCommand.*.cs
# by responsibility. Run from the repository's root on the one-file version (e.g. after merging a branch that edited it).
src = 'src/Hourglass.Server/Cli/StatusCommand.cs'
L = open(src).read().split('\n')
def g(a, b):  # 1-indexed inclusive
    return L[a-1:b]
def find(pred, start=1):
    for i in range(start-1, len(L)):
        if pred(L[i]): return i+1
    raise Exception('nf')
def exact(s, start=1): return find(lambda l: l == s, start)

usings_all = g(1, 13)
ns = 'namespace Hourglass.Server.Cli;'
build_start = exact('    public static Command Build(Func<ParseResult, GlobalOptions> options, Func<ParseResult, ILoggerFactory> loggers)')
create_doc = find(lambda l: l.strip() == '/// <summary>', build_start)
printglobal = exact('    private static void PrintGlobal(IAnsiConsole console, StatusSnapshot snapshot)')
printsummary = exact('    private static void PrintSummary(IAnsiConsole console, StatusSnapshot snapshot)')
printtenant = exact('    private static void PrintTenant(IAnsiConsole console, StatusSnapshot snapshot, TenantState tenant)')
outbox_comment = find(lambda l: l.startswith("    // The tenant's messages by status"))
newtable = exact('    internal static Table NewTable(params string[] columns)')
records = exact('    internal sealed record GlobalControl(bool Paused, string? Reason, DateTimeOffset SetAt, string? SetBy);')
end = len(L) - 1
while L[end-1] != '}': end -= 1
# tenant body pieces
hdr_end = find(lambda l: l.strip() == '', exact('        var claim = tenant.ClaimedBy is { } claimedBy ? $"; claimed by {claimedBy}" : "";')) - 1
runs_a = hdr_end + 2; runs_b = exact('        if (snapshot.LastReflection is { } reflection)') - 3
refl_a = runs_b + 2; assert L[runs_b-1] == '        }' and L[refl_a-1] == '        console.WriteLine();'
refl_b = find(lambda l: l == '        }', exact('            console.WriteLine("Last reflection: none yet.");') + 1)
eng_a = exact('        console.WriteLine("Engagement (as of the last compliance refresh)");') - 1; eng_b = exact('        console.Write(clocks);')
appr_a = exact('        console.WriteLine("Approvals");') - 1; appr_b = exact('        console.Write(approvalTable);')
viol_a = exact('        console.WriteLine("Policy violations, last 24 hours");') - 1; viol_b = exact('        console.Write(violationTable);')
queue_a = exact('        console.WriteLine("Order queue");') - 1; queue_b = exact('        console.Write(queueTable);')
assert L[queue_b+1] == '        PrintOutbox(console, snapshot, tenant);'
exc_a = exact('        console.WriteLine("Open order exceptions");') - 1; exc_b = outbox_comment - 3
assert L[exc_b] == '    }' and L[exc_b-1].strip() == 'console.Write(exceptionTable);', (L[exc_b-1], L[exc_b])

arrays = {k: [l for l in L[:build_start] if k in l and 'static readonly' in l][0] for k in ['s_runStatuses', 's_queueStatuses', 's_severities', 's_messageStatuses']}
run_comment = g(exact('    // Every run status: the last run is found per status through idx_autonomous_runs_tenant_status (tenant_id, status,'), exact('    // Every run status: the last run is found per status through idx_autonomous_runs_tenant_status (tenant_id, status,')+1)

SIG = '(IAnsiConsole console, StatusSnapshot snapshot, TenantState tenant)'
def method(comment, name, body):
    out = []
    if comment: out += ['    // ' + c for c in comment]
    out += [f'    private static void {name}{SIG}', '    {'] + body + ['    }']
    return out

def file(name, usings, doc, body):
    text = '\n'.join(usings + ([''] if usings else []) + [ns, ''] + doc + ['internal static partial class StatusCommand', '{'] + body + ['}', ''])
    # strip a trailing blank inside class
    text = re.sub(r'\n\n}\n$', '\n}\n', text)
    open('src/Hourglass.Server/Cli/' + name, 'w').write(text)

def u(*names): return [f'using {n};' for n in names]

# entry
doc = g(find(lambda l: l.startswith('/// <summary>')), find(lambda l: l.startswith('internal static class StatusCommand')) - 1)
tenant_files = """/// <remarks>
/// A file per responsibility: the command's option and entry (this file); the console and the formats
/// (<c>StatusCommand.Console.cs</c>); the kill switch and the workers (<c>.Workers.cs</c>); the tenants' summary and one
/// tenant's header (<c>.Tenants.cs</c>); one tenant's sections — runs and reflection (<c>.Runs.cs</c>), engagement
/// compliance and approvals (<c>.Compliance.cs</c>), policy violations (<c>.Policies.cs</c>), the order queue and
/// exceptions (<c>.Orders.cs</c>), the outbox (<c>.Outbox.cs</c>); and what it reads, in one snapshot
/// (<c>.Snapshot.cs</c>).
/// </remarks>"""
entry = g(build_start, create_doc - 2)
file('StatusCommand.cs', u('System.CommandLine', 'System.Globalization', 'Microsoft.Extensions.Logging', 'Spectre.Console'), doc + [tenant_files], entry)

# console + formats
console = g(create_doc, printglobal - 2) + [''] + g(newtable, records - 2)
file('StatusCommand.Console.cs', u('System.Globalization', 'System.Text', 'Spectre.Console', 'Spectre.Console.Rendering'), [], console)

file('StatusCommand.Workers.cs', u('System.Globalization', 'Spectre.Console'), [], g(printglobal, printsummary - 2))

tenants = g(printsummary, printtenant - 2) + [''] + g(printtenant, hdr_end) + [
    '',
    '        PrintRuns(console, snapshot, tenant);',
    '        PrintReflection(console, snapshot);',
    '        PrintEngagement(console, snapshot, tenant);',
    '        PrintApprovals(console, snapshot, tenant);',
    '        PrintViolations(console, snapshot, tenant);',
    '        PrintQueue(console, snapshot, tenant);',
    '        PrintOutbox(console, snapshot, tenant);',
    '        PrintExceptions(console, snapshot, tenant);',
    '    }']
file('StatusCommand.Tenants.cs', u('System.Globalization', 'Spectre.Console'), [], tenants)

runs = method(["The tenant's last runs."], 'PrintRuns', g(runs_a, runs_b)) + [''] + \
       method(["The tenant's latest hourly reflection."], 'PrintReflection', g(refl_a, refl_b))
runs = [l.replace('PrintReflection' + SIG, 'PrintReflection(IAnsiConsole console, StatusSnapshot snapshot)') for l in runs]
file('StatusCommand.Runs.cs', u('System.Globalization', 'Spectre.Console'), [], runs)

comp = method(['Engagement compliance as the last refresh left it.'], 'PrintEngagement', g(eng_a, eng_b)) + [''] + \
       method(['Open approval cards, those past due and the next due.'], 'PrintApprovals', g(appr_a, appr_b))
file('StatusCommand.Compliance.cs', u('Spectre.Console'), [], comp)

pol = [arrays['s_severities'], ''] + method(['Policy violations of the last 24 hours by severity, and how many were blocked.'], 'PrintViolations', g(viol_a, viol_b))
file('StatusCommand.Policies.cs', u('Spectre.Console'), [], pol)

orders = [arrays['s_queueStatuses'], ''] + method(['The order queue by status.'], 'PrintQueue', g(queue_a, queue_b)) + [''] + \
         method(["The open order exceptions by type (still open or in review)."], 'PrintExceptions', g(exc_a, exc_b))
file('StatusCommand.Orders.cs', u('Spectre.Console'), [], orders)

file('StatusCommand.Outbox.cs', u('System.Globalization', 'Spectre.Console'), [], [arrays['s_messageStatuses'], ''] + g(outbox_comment, newtable - 2))

snap = run_comment + [arrays['s_runStatuses'], ''] + g(records, end - 1)
file('StatusCommand.Snapshot.cs', u('System.Data', 'Hourglass.Cycles', 'Hourglass.Engagement', 'Hourglass.Orders', 'Hourglass.Policies', 'Npgsql', 'NpgsqlTypes'), [], snap)
