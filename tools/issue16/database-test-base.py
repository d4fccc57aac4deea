# One-off (issue 16): moves integration test classes that hold their own DatabaseFixture
# (`private readonly DatabaseFixture _database = new();` + InitializeAsync/DisposeAsync) onto
# tests/Hourglass.IntegrationTests/Infrastructure/DatabaseTest. Run from the repository's root; idempotent; it lists the
# files it left for a hand (a set-up before the database, several databases).
import re, sys, pathlib
root = pathlib.Path('tests/Hourglass.IntegrationTests')
skip = {'Security/TwoTenantFixture.cs', 'Api/ApiServer.cs', 'Dashboard/DashboardTests.cs', 'Simulation/SimulationDeterminismTests.cs'}
done, left = [], []
for path in sorted(root.rglob('*.cs')):
    rel = str(path.relative_to(root))
    if '/obj/' in str(path) or '/bin/' in str(path) or rel in skip: continue
    s = path.read_text()
    if '    private readonly DatabaseFixture _database = new();\n' not in s: continue
    o = s
    s = re.sub(r'^(public sealed (?:partial )?class [^\n]*?): IAsyncLifetime$', r'\1: DatabaseTest', s, flags=re.M)
    s = s.replace('    private readonly DatabaseFixture _database = new();\n', '')
    s = s.replace('    private TestDb Db => _database.Db;\n', '')
    s = s.replace('    public Task InitializeAsync() => _database.InitializeAsync();\n', '')
    s = s.replace('    public Task DisposeAsync() => _database.DisposeAsync();\n', '')
    s = s.replace('    public async Task DisposeAsync() => await _database.DisposeAsync();\n', '')
    s = s.replace('    public async Task InitializeAsync()\n    {\n        await _database.InitializeAsync();\n',
                  '    protected override async Task SeedAsync()\n    {\n')
    m = re.search(r'    public async Task DisposeAsync\(\)\n    \{\n(?P<body>(?:.*\n)*?)\n?        await _database\.DisposeAsync\(\);\n    \}\n', s)
    if m:
        body = m.group('body').rstrip('\n') + '\n'
        if 'await ' in body:
            new = '    protected override async Task TearDownAsync()\n    {\n' + body + '    }\n'
        else:
            new = '    protected override Task TearDownAsync()\n    {\n' + body + '        return Task.CompletedTask;\n    }\n'
        s = s[:m.start()] + new + s[m.end():]
    m = re.search(r'    public Task DisposeAsync\(\)\n    \{\n(?P<body>(?:.*\n)*?)        return _database\.DisposeAsync\(\);\n    \}\n', s)
    if m:
        s = s[:m.start()] + '    protected override Task TearDownAsync()\n    {\n' + m.group('body') + '        return Task.CompletedTask;\n    }\n' + s[m.end():]
    for name in ('Db', 'DataSource', 'ConnectionString'):
        s = s.replace('_database.' + name, name)
    s = re.sub(r'(?<!\w)_database\b', 'Database', s)
    s = re.sub(r'\{\n\n+', '{\n', s)
    s = re.sub(r'\n\n\n+', '\n\n', s)
    s = re.sub(r'\n\n(    \})', r'\n\1', s)
    problems = [w for w in ('Task InitializeAsync()', 'Task DisposeAsync()', 'IAsyncLifetime') if w in s]
    if ': DatabaseTest' not in s: problems.append('class line')
    path.write_text(s)
    (left if problems else done).append(f'{rel} {problems}' if problems else rel)
print('done', len(done)); print('\n'.join(done)); print('left', len(left)); print('\n'.join(left))
