using System.Text;
using Npgsql;

namespace Hourglass.Storage;

/// <summary>One object of the schema as <see cref="SchemaDump"/> writes it: its header (<c>kind name</c>) and its text.</summary>
internal sealed record SchemaObject(string Kind, string Name, string Text)
{
    /// <summary>The comment line that opens the object in the dump: <c>-- table public.accounts</c>.</summary>
    public string Header => $"-- {Kind} {Name}";
}

/// <summary>Where a dump and a committed file part: the first object that differs, and how.</summary>
internal sealed record SchemaDifference(string Object, string Detail);

/// <summary>
/// The schema as the migrations leave it, written from the catalogs (not pg_dump, whose output and required version
/// follow the server's major) and normalised so that it diffs cleanly and reads the same on PostgreSQL 15, 17 and 18:
/// the product's schemas (<see cref="Schemas"/>) with their types, sequences, tables (columns, defaults, constraints,
/// indexes, triggers, row level security, policies, grants, comments), views and functions (their whole current
/// definition, from <c>pg_get_functiondef</c>, and who may execute them). Objects are sorted by name (ordinal), owners
/// and OIDs are left out, and so is what only some majors have: not-null constraints as catalog rows (18) and the
/// MAINTAIN privilege (17). Objects that belong to an extension are left out.
/// </summary>
internal static class SchemaDump
{
    /// <summary>The schemas the product owns; <c>auth</c> is Supabase's (stood in for locally) and is left out.</summary>
    public static readonly IReadOnlyList<string> Schemas = ["hourglass", "public"];

    /// <summary>The file in the repository that holds the dump.</summary>
    public const string RepositoryPath = "supabase/schema.sql";

    /// <summary>The command that regenerates the file, from the repository's root.</summary>
    public const string RegenerateCommand = "dotnet run --project src/Hourglass.Server -- db schema --out supabase/schema.sql";

    public const string Header = """
        -- The database schema as the migrations (supabase/migrations) leave it. GENERATED: do not edit.
        -- Regenerate after adding a migration, from the repository's root:
        --   dotnet run --project src/Hourglass.Server -- db schema --out supabase/schema.sql
        -- and check it is current with '... db schema --check' (a test fails when it is stale).
        -- Written from the catalogs of a freshly migrated database, normalised to read the same on PostgreSQL 15, 17
        -- and 18: schemas hourglass and public; objects sorted by name; no owners, OIDs or versions; grants are the
        -- privileges held besides the owner's (defaults included: a privilege not listed is not held). See docs/schema.md.
        """;

    private static readonly string[] s_kindOrder = ["schema", "type", "sequence", "table", "view", "function"];

    /// <summary>The whole dump: the header, then every object, each after a blank line.</summary>
    public static string Render(IReadOnlyList<SchemaObject> objects)
    {
        var text = new StringBuilder(Header.ReplaceLineEndings("\n")).Append('\n');
        foreach (var item in objects)
        {
            text.Append('\n').Append(item.Header).Append('\n').Append(item.Text.TrimEnd('\n')).Append('\n');
        }

        return text.ToString();
    }

    /// <summary>Reads the schema of the database <paramref name="dataSource"/> points at.</summary>
    public static async Task<IReadOnlyList<SchemaObject>> ReadAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken = default)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        // Every name in every definition comes out schema-qualified, whatever the caller's search_path.
        await using (var path = new NpgsqlCommand("select pg_catalog.set_config('search_path', '', false)", connection))
        {
            await path.ExecuteNonQueryAsync(cancellationToken);
        }

        int serverVersion;
        await using (var version = new NpgsqlCommand("select pg_catalog.current_setting('server_version_num')::integer", connection))
        {
            serverVersion = (int)(await version.ExecuteScalarAsync(cancellationToken))!;
        }

        var objects = new List<SchemaObject>();
        objects.AddRange(await ReadSchemasAsync(connection, cancellationToken));
        objects.AddRange(await ReadTypesAsync(connection, cancellationToken));
        objects.AddRange(await ReadSequencesAsync(connection, cancellationToken));
        objects.AddRange(await ReadRelationsAsync(connection, serverVersion, cancellationToken));
        objects.AddRange(await ReadFunctionsAsync(connection, cancellationToken));
        return objects
            .Select(o => o with { Text = Normalise(o.Text) })
            .OrderBy(o => Array.IndexOf(s_kindOrder, o.Kind))
            .ThenBy(o => o.Name, StringComparer.Ordinal)
            .ToList();
    }

    /// <summary>
    /// The first object where <paramref name="committed"/> (the file) and <paramref name="current"/> (a fresh dump)
    /// differ, or null when they are the same text.
    /// </summary>
    public static SchemaDifference? Compare(string committed, string current)
    {
        committed = Normalise(committed);
        current = Normalise(current);
        if (committed == current)
        {
            return null;
        }

        var before = Sections(committed);
        var after = Sections(current);
        foreach (var (header, text) in after)
        {
            if (!before.TryGetValue(header, out var old))
            {
                return new SchemaDifference(Describe(header), "is in the migrated schema but not in the file (added)");
            }

            if (old != text)
            {
                return new SchemaDifference(Describe(header), $"differs: {FirstDifferentLine(old, text)}");
            }
        }

        foreach (var header in before.Keys.Where(h => !after.ContainsKey(h)))
        {
            return new SchemaDifference(Describe(header), "is in the file but not in the migrated schema (dropped or renamed)");
        }

        return new SchemaDifference("the file's header or the order of its objects", $"differs: {FirstDifferentLine(committed, current)}");
    }

    /// <summary>The message for a stale file: what differs and the command that regenerates it.</summary>
    public static string StaleMessage(string file, SchemaDifference difference) =>
        $"{file} is stale: {difference.Object} {difference.Detail}. Regenerate it from the repository's root with " +
        $"'{RegenerateCommand}' and commit it (the diff shows what the migrations changed).";

    private static string Describe(string header) => header == "" ? "the header" : header["-- ".Length..];

    private static string FirstDifferentLine(string before, string after)
    {
        var a = before.Split('\n');
        var b = after.Split('\n');
        for (var i = 0; i < Math.Max(a.Length, b.Length); i++)
        {
            var left = i < a.Length ? a[i] : "(nothing)";
            var right = i < b.Length ? b[i] : "(nothing)";
            if (left != right)
            {
                return $"line {i + 1} of the object is '{Shorten(left)}' in the file, '{Shorten(right)}' when migrated";
            }
        }

        return "whitespace only";
    }

    private static string Shorten(string line)
    {
        line = line.Trim();
        return line.Length <= 120 ? line : line[..120] + "…";
    }

    // Splits a dump at its object headers ("-- <kind> <name>" after a blank line); the text before the first is "".
    private static Dictionary<string, string> Sections(string dump)
    {
        var sections = new Dictionary<string, string>(StringComparer.Ordinal);
        var header = "";
        var text = new StringBuilder();
        var lines = dump.Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            var opensObject = i > 0 && lines[i - 1].Length == 0 && lines[i].StartsWith("-- ", StringComparison.Ordinal)
                && s_kindOrder.Any(k => lines[i].StartsWith($"-- {k} ", StringComparison.Ordinal));
            if (opensObject)
            {
                sections[header] = text.ToString().TrimEnd('\n');
                header = lines[i];
                text.Clear();
                continue;
            }

            text.Append(lines[i]).Append('\n');
        }

        sections[header] = text.ToString().TrimEnd('\n');
        return sections;
    }

    // LF line ends, no trailing spaces (an editor or git would strip them from the committed file), one final newline.
    private static string Normalise(string text)
    {
        var lines = text.ReplaceLineEndings("\n").Split('\n').Select(l => l.TrimEnd());
        return string.Join('\n', lines).TrimEnd('\n') + "\n";
    }

    private const string SchemaFilter = "n.nspname = any ($1)";

    // Objects created by an extension belong to it, not to the migrations.
    private const string NotAnExtensionMember =
        "not exists (select 1 from pg_catalog.pg_depend d where d.objid = {0} and d.classid = '{1}'::pg_catalog.regclass and d.deptype = 'e')";

    // Privileges held besides the owner's, one line per grantee ("all" for every table privilege there is on 15;
    // MAINTAIN, 17+, left out), in the catalog's ACL or its default.
    private static string GrantsSql(string acl, string owner) => $"""
        (select pg_catalog.string_agg(g.line, e'\n' order by g.line collate "C")
         from (select pg_catalog.format('%s to %s%s',
                        case when a.privileges @> array['DELETE','INSERT','REFERENCES','SELECT','TRIGGER','TRUNCATE','UPDATE']
                             then 'all' else pg_catalog.lower(pg_catalog.array_to_string(a.privileges, ', ')) end,
                        case when a.grantee = 0 then 'public' else pg_catalog.quote_ident(r.rolname) end,
                        case when a.grantable then ' with grant option' else '' end) as line
               from (select x.grantee, x.is_grantable as grantable,
                            pg_catalog.array_agg(x.privilege_type::text order by x.privilege_type::text collate "C") as privileges
                     from pg_catalog.aclexplode({acl}) x
                     where x.grantee <> {owner} and x.privilege_type <> 'MAINTAIN'
                     group by x.grantee, x.is_grantable) a
               left join pg_catalog.pg_roles r on r.oid = a.grantee) g)
        """;

    private static async Task<List<SchemaObject>> ReadSchemasAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        var sql = $"""
            select n.nspname, {GrantsSql("coalesce(n.nspacl, pg_catalog.acldefault('n', n.nspowner))", "n.nspowner")},
                   pg_catalog.obj_description(n.oid, 'pg_namespace')
            from pg_catalog.pg_namespace n where {SchemaFilter}
            """;
        var objects = new List<SchemaObject>();
        await foreach (var row in QueryAsync(connection, sql, cancellationToken))
        {
            var name = Ident(row.Get(0)!);
            var text = new StringBuilder($"create schema {name};\n");
            AppendGrants(text, row.Get(1), $"schema {name}");
            AppendComment(text, $"schema {name}", row.Get(2));
            objects.Add(new SchemaObject("schema", name, text.ToString()));
        }

        return objects;
    }

    private static async Task<List<SchemaObject>> ReadTypesAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        // Free-standing types: composites (not a table's row type), enums and domains.
        var sql = $"""
            select pg_catalog.format('%I.%I', n.nspname, t.typname), t.typtype::text,
                   case t.typtype
                     when 'c' then (select pg_catalog.string_agg(pg_catalog.format('  %I %s', a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod)), e',\n' order by a.attnum)
                                    from pg_catalog.pg_attribute a where a.attrelid = t.typrelid and a.attnum > 0 and not a.attisdropped)
                     when 'e' then (select pg_catalog.string_agg(pg_catalog.quote_literal(e.enumlabel), ', ' order by e.enumsortorder)
                                    from pg_catalog.pg_enum e where e.enumtypid = t.oid)
                     when 'd' then pg_catalog.format_type(t.typbasetype, t.typtypmod)
                                   || case when t.typnotnull then ' not null' else '' end
                                   || coalesce(' default ' || t.typdefault, '')
                                   || coalesce((select pg_catalog.string_agg(pg_catalog.format(' constraint %I %s', c.conname, pg_catalog.pg_get_constraintdef(c.oid)), '' order by c.conname collate "C")
                                                from pg_catalog.pg_constraint c where c.contypid = t.oid and c.contype = 'c'), '')
                   end,
                   pg_catalog.obj_description(t.oid, 'pg_type'),
                   {GrantsSql("coalesce(t.typacl, pg_catalog.acldefault('T', t.typowner))", "t.typowner")}
            from pg_catalog.pg_type t
            join pg_catalog.pg_namespace n on n.oid = t.typnamespace
            left join pg_catalog.pg_class c on c.oid = t.typrelid
            where {SchemaFilter} and (t.typtype in ('e', 'd') or (t.typtype = 'c' and c.relkind = 'c'))
              and {string.Format(System.Globalization.CultureInfo.InvariantCulture, NotAnExtensionMember, "t.oid", "pg_catalog.pg_type")}
            """;
        var objects = new List<SchemaObject>();
        await foreach (var row in QueryAsync(connection, sql, cancellationToken))
        {
            var name = row.Get(0)!;
            var text = new StringBuilder(row.Get(1) switch
            {
                "c" => $"create type {name} as (\n{row.Get(2)}\n);\n",
                "e" => $"create type {name} as enum ({row.Get(2)});\n",
                _ => $"create domain {name} as {row.Get(2)};\n",
            });
            AppendComment(text, $"type {name}", row.Get(3));
            AppendGrants(text, row.Get(4), $"type {name}");
            objects.Add(new SchemaObject("type", name, text.ToString()));
        }

        return objects;
    }

    private static async Task<List<SchemaObject>> ReadSequencesAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        // Sequences of identity columns are part of their column; the others are listed with their settings.
        var sql = $"""
            select pg_catalog.format('%I.%I', n.nspname, c.relname),
                   pg_catalog.format('as %s increment by %s minvalue %s maxvalue %s start with %s cache %s%s',
                     pg_catalog.format_type(s.seqtypid, null), s.seqincrement, s.seqmin, s.seqmax, s.seqstart, s.seqcache,
                     case when s.seqcycle then ' cycle' else '' end),
                   (select pg_catalog.format('%I.%I.%I', tn.nspname, t.relname, a.attname)
                    from pg_catalog.pg_depend d
                    join pg_catalog.pg_class t on t.oid = d.refobjid
                    join pg_catalog.pg_namespace tn on tn.oid = t.relnamespace
                    join pg_catalog.pg_attribute a on a.attrelid = d.refobjid and a.attnum = d.refobjsubid
                    where d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass and d.objid = c.oid and d.deptype = 'a'),
                   {GrantsSql("coalesce(c.relacl, pg_catalog.acldefault('s', c.relowner))", "c.relowner")},
                   pg_catalog.obj_description(c.oid, 'pg_class')
            from pg_catalog.pg_class c
            join pg_catalog.pg_namespace n on n.oid = c.relnamespace
            join pg_catalog.pg_sequence s on s.seqrelid = c.oid
            where {SchemaFilter} and c.relkind = 'S'
              and not exists (select 1 from pg_catalog.pg_depend d where d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass and d.objid = c.oid and d.deptype = 'i')
              and {string.Format(System.Globalization.CultureInfo.InvariantCulture, NotAnExtensionMember, "c.oid", "pg_catalog.pg_class")}
            """;
        var objects = new List<SchemaObject>();
        await foreach (var row in QueryAsync(connection, sql, cancellationToken))
        {
            var name = row.Get(0)!;
            var text = new StringBuilder($"create sequence {name} {row.Get(1)};\n");
            if (row.Get(2) is { } owner)
            {
                text.Append($"alter sequence {name} owned by {owner};\n");
            }

            AppendGrants(text, row.Get(3), $"sequence {name}");
            AppendComment(text, $"sequence {name}", row.Get(4));
            objects.Add(new SchemaObject("sequence", name, text.ToString()));
        }

        return objects;
    }

    private static async Task<List<SchemaObject>> ReadRelationsAsync(NpgsqlConnection connection, int serverVersion, CancellationToken cancellationToken)
    {
        var relationsSql = $"""
            select c.oid, pg_catalog.format('%I.%I', n.nspname, c.relname), c.relkind::text, c.relrowsecurity, c.relforcerowsecurity,
                   (select pg_catalog.array_to_string(c.reloptions, ', ')),
                   case when c.relkind in ('v', 'm') then pg_catalog.pg_get_viewdef(c.oid, true) end,
                   {GrantsSql("coalesce(c.relacl, pg_catalog.acldefault('r', c.relowner))", "c.relowner")},
                   pg_catalog.obj_description(c.oid, 'pg_class')
            from pg_catalog.pg_class c
            join pg_catalog.pg_namespace n on n.oid = c.relnamespace
            where {SchemaFilter} and c.relkind in ('r', 'p', 'v', 'm')
              and {string.Format(System.Globalization.CultureInfo.InvariantCulture, NotAnExtensionMember, "c.oid", "pg_catalog.pg_class")}
            """;
        var relations = new List<(uint Oid, string Name, string Kind, bool Rls, bool ForceRls, string? Options, string? ViewDef, string? Grants, string? Comment)>();
        await foreach (var row in QueryAsync(connection, relationsSql, cancellationToken))
        {
            relations.Add(((uint)row.Values[0]!, row.Get(1)!, row.Get(2)!, (bool)row.Values[3]!, (bool)row.Values[4]!, row.Get(5), row.Get(6), row.Get(7), row.Get(8)));
        }

        var columns = await GroupAsync(connection, $"""
            select a.attrelid,
                   pg_catalog.format('  %I %s', a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod))
                   || case when a.attcollation <> t.typcollation then pg_catalog.format(' collate %I.%I', cn.nspname, co.collname) else '' end
                   || case when a.attgenerated = 's' then pg_catalog.format(' generated always as (%s) stored', pg_catalog.pg_get_expr(d.adbin, d.adrelid))
                           when d.adbin is not null then ' default ' || pg_catalog.pg_get_expr(d.adbin, d.adrelid) else '' end
                   || case a.attidentity when 'a' then ' generated always as identity' when 'd' then ' generated by default as identity' else '' end
                   || case when a.attnotnull then ' not null' else '' end
            from pg_catalog.pg_attribute a
            join pg_catalog.pg_class c on c.oid = a.attrelid
            join pg_catalog.pg_namespace n on n.oid = c.relnamespace
            join pg_catalog.pg_type t on t.oid = a.atttypid
            left join pg_catalog.pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
            left join pg_catalog.pg_collation co on co.oid = a.attcollation
            left join pg_catalog.pg_namespace cn on cn.oid = co.collnamespace
            where {SchemaFilter} and c.relkind in ('r', 'p', 'v', 'm') and a.attnum > 0 and not a.attisdropped
            order by a.attrelid, a.attnum
            """, cancellationToken);

        // Not-null constraints are catalog rows from 18 on ('n'): they are the columns' "not null" above.
        var constraints = await GroupAsync(connection, $"""
            select c.conrelid, pg_catalog.format('add constraint %I %s', c.conname, pg_catalog.pg_get_constraintdef(c.oid))
            from pg_catalog.pg_constraint c
            join pg_catalog.pg_class r on r.oid = c.conrelid
            join pg_catalog.pg_namespace n on n.oid = r.relnamespace
            where {SchemaFilter} and c.contype in ('c', 'f', 'p', 'u', 'x', 't')
            order by c.conrelid, c.conname collate "C"
            """, cancellationToken);

        // Indexes that back a constraint come with it.
        var indexes = await GroupAsync(connection, $"""
            select i.indrelid, pg_catalog.pg_get_indexdef(i.indexrelid) || ';'
            from pg_catalog.pg_index i
            join pg_catalog.pg_class x on x.oid = i.indexrelid
            join pg_catalog.pg_namespace n on n.oid = x.relnamespace
            where {SchemaFilter}
              and not exists (select 1 from pg_catalog.pg_constraint c where c.conindid = i.indexrelid and c.contype in ('p', 'u', 'x'))
            order by i.indrelid, x.relname collate "C"
            """, cancellationToken);

        var triggers = await GroupAsync(connection, $"""
            select t.tgrelid, pg_catalog.pg_get_triggerdef(t.oid) || ';'
                   || case t.tgenabled when 'D' then pg_catalog.format(e'\nalter table %s disable trigger %I;', t.tgrelid::pg_catalog.regclass, t.tgname)
                                       when 'R' then pg_catalog.format(e'\nalter table %s enable replica trigger %I;', t.tgrelid::pg_catalog.regclass, t.tgname)
                                       when 'A' then pg_catalog.format(e'\nalter table %s enable always trigger %I;', t.tgrelid::pg_catalog.regclass, t.tgname)
                                       else '' end
            from pg_catalog.pg_trigger t
            join pg_catalog.pg_class r on r.oid = t.tgrelid
            join pg_catalog.pg_namespace n on n.oid = r.relnamespace
            where {SchemaFilter} and not t.tgisinternal
            order by t.tgrelid, t.tgname collate "C"
            """, cancellationToken);

        var policies = await GroupAsync(connection, $"""
            select p.polrelid,
                   pg_catalog.format('create policy %I on %s as %s for %s to %s', p.polname, p.polrelid::pg_catalog.regclass,
                     case when p.polpermissive then 'permissive' else 'restrictive' end,
                     case p.polcmd when 'r' then 'select' when 'a' then 'insert' when 'w' then 'update' when 'd' then 'delete' else 'all' end,
                     (select pg_catalog.string_agg(case when r.oid = 0 then 'public' else pg_catalog.quote_ident(g.rolname) end, ', '
                                                  order by case when r.oid = 0 then 'public' else g.rolname::text end collate "C")
                      from pg_catalog.unnest(p.polroles) r(oid) left join pg_catalog.pg_roles g on g.oid = r.oid))
                   || coalesce(e'\n  using (' || pg_catalog.pg_get_expr(p.polqual, p.polrelid) || ')', '')
                   || coalesce(e'\n  with check (' || pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) || ')', '') || ';'
            from pg_catalog.pg_policy p
            join pg_catalog.pg_class r on r.oid = p.polrelid
            join pg_catalog.pg_namespace n on n.oid = r.relnamespace
            where {SchemaFilter}
            order by p.polrelid, p.polname collate "C"
            """, cancellationToken);

        var columnGrants = await GroupAsync(connection, $"""
            select a.attrelid, pg_catalog.format('grant %s (%I) on table %s to %s%s;',
                     pg_catalog.lower(x.privilege_type), a.attname, a.attrelid::pg_catalog.regclass,
                     case when x.grantee = 0 then 'public' else pg_catalog.quote_ident(g.rolname) end,
                     case when x.is_grantable then ' with grant option' else '' end)
            from pg_catalog.pg_attribute a
            join pg_catalog.pg_class c on c.oid = a.attrelid
            join pg_catalog.pg_namespace n on n.oid = c.relnamespace
            cross join lateral pg_catalog.aclexplode(a.attacl) x
            left join pg_catalog.pg_roles g on g.oid = x.grantee
            where {SchemaFilter} and a.attacl is not null and not a.attisdropped and x.grantee <> c.relowner
            order by a.attrelid, a.attname collate "C", x.privilege_type collate "C", g.rolname collate "C"
            """, cancellationToken);

        var columnComments = await GroupAsync(connection, $"""
            select a.attrelid, pg_catalog.format('comment on column %s.%I is %L;', a.attrelid::pg_catalog.regclass, a.attname,
                     pg_catalog.col_description(a.attrelid, a.attnum))
            from pg_catalog.pg_attribute a
            join pg_catalog.pg_class c on c.oid = a.attrelid
            join pg_catalog.pg_namespace n on n.oid = c.relnamespace
            where {SchemaFilter} and a.attnum > 0 and not a.attisdropped and pg_catalog.col_description(a.attrelid, a.attnum) is not null
            order by a.attrelid, a.attnum
            """, cancellationToken);

        var objects = new List<SchemaObject>();
        foreach (var r in relations)
        {
            var text = new StringBuilder();
            var isView = r.Kind is "v" or "m";
            var kind = r.Kind == "m" ? "materialized view" : isView ? "view" : "table";
            var with = string.IsNullOrEmpty(r.Options) ? "" : $" with ({r.Options})";
            if (isView)
            {
                var definition = serverVersion < 160000 ? UnqualifySingleRelation(r.ViewDef!) : r.ViewDef!;
                text.Append($"create {kind} {r.Name}{with} as\n{definition.TrimEnd().TrimEnd(';')};\n");
                text.Append($"-- columns: {string.Join(", ", Lines(columns, r.Oid).Select(c => c.Trim()))}\n");
            }
            else
            {
                text.Append($"create table {r.Name} (\n{string.Join(",\n", Lines(columns, r.Oid))}\n){with};\n");
                foreach (var constraint in Lines(constraints, r.Oid))
                {
                    text.Append($"alter table {r.Name} {constraint};\n");
                }
            }

            Append(text, Lines(indexes, r.Oid));
            Append(text, Lines(triggers, r.Oid));
            if (r.Rls)
            {
                text.Append($"alter table {r.Name} enable row level security;\n");
            }

            if (r.ForceRls)
            {
                text.Append($"alter table {r.Name} force row level security;\n");
            }

            Append(text, Lines(policies, r.Oid));
            AppendGrants(text, r.Grants, $"table {r.Name}");
            Append(text, Lines(columnGrants, r.Oid));
            AppendComment(text, $"{(isView ? kind : "table")} {r.Name}", r.Comment);
            Append(text, Lines(columnComments, r.Oid));
            objects.Add(new SchemaObject(isView ? "view" : "table", r.Name, text.ToString()));
        }

        return objects;
    }

    private static async Task<List<SchemaObject>> ReadFunctionsAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        var sql = $"""
            select p.oid::pg_catalog.regprocedure::text, p.prokind::text,
                   case when p.prokind in ('f', 'p', 'w') then pg_catalog.pg_get_functiondef(p.oid) end,
                   {GrantsSql("coalesce(p.proacl, pg_catalog.acldefault('f', p.proowner))", "p.proowner")},
                   pg_catalog.obj_description(p.oid, 'pg_proc')
            from pg_catalog.pg_proc p
            join pg_catalog.pg_namespace n on n.oid = p.pronamespace
            where {SchemaFilter}
              and {string.Format(System.Globalization.CultureInfo.InvariantCulture, NotAnExtensionMember, "p.oid", "pg_catalog.pg_proc")}
            """;
        var objects = new List<SchemaObject>();
        await foreach (var row in QueryAsync(connection, sql, cancellationToken))
        {
            var signature = row.Get(0)!;
            var kind = row.Get(1) == "p" ? "procedure" : "function";
            var definition = row.Get(2) ?? $"-- aggregate {signature}: its definition is not shown";
            var text = new StringBuilder(definition.TrimEnd()).Append(row.Get(2) is null ? "\n" : ";\n");
            AppendGrants(text, row.Get(3), $"{kind} {signature}");
            AppendComment(text, $"{kind} {signature}", row.Get(4));
            objects.Add(new SchemaObject("function", signature, text.ToString()));
        }

        return objects;
    }

    /// <summary>
    /// PostgreSQL 16 and later print the columns of a query over one relation unqualified (<c>tenant_id</c>); 15
    /// qualifies them with the relation's alias (<c>e.tenant_id</c>). For a view whose only FROM names one relation (no
    /// join, no subquery), the alias is taken off outside string literals, so 15 prints what 16+ print.
    /// </summary>
    internal static string UnqualifySingleRelation(string definition)
    {
        var from = System.Text.RegularExpressions.Regex.Matches(definition, @"\bFROM\b");
        if (from.Count != 1 || System.Text.RegularExpressions.Regex.IsMatch(definition, @"\bJOIN\b|\(\s*SELECT\b|\bUNION\b|\bLATERAL\b"))
        {
            return definition;
        }

        var single = System.Text.RegularExpressions.Regex.Match(definition[from[0].Index..], @"^FROM\s+[\w.""]+(?:\s+(\w+))?\s*(?:\n|$|WHERE|GROUP|ORDER|;)");
        if (!single.Success)
        {
            return definition;
        }

        // The alias, else the relation's own name, is what qualifies the columns.
        var qualifier = single.Groups[1].Success
            ? single.Groups[1].Value
            : System.Text.RegularExpressions.Regex.Match(definition[from[0].Index..], @"^FROM\s+(?:[\w""]+\.)?([\w""]+)").Groups[1].Value;
        var prefix = qualifier + ".";
        var fromLineStart = from[0].Index;
        var fromLineEnd = definition.IndexOf('\n', fromLineStart) is var end and >= 0 ? end : definition.Length;
        var text = new StringBuilder(definition.Length);
        var quoted = false;
        for (var i = 0; i < definition.Length; i++)
        {
            var c = definition[i];
            if (c == '\'')
            {
                quoted = !quoted;
            }

            var startsWord = i == 0 || !(char.IsLetterOrDigit(definition[i - 1]) || definition[i - 1] is '_' or '.' or '"');
            var outsideFrom = i < fromLineStart || i > fromLineEnd;
            if (!quoted && startsWord && outsideFrom && string.CompareOrdinal(definition, i, prefix, 0, prefix.Length) == 0)
            {
                i += prefix.Length - 1;
                continue;
            }

            text.Append(c);
        }

        return text.ToString();
    }

    private static IEnumerable<string> Lines(Dictionary<uint, List<string>> grouped, uint oid) =>
        grouped.TryGetValue(oid, out var lines) ? lines : [];

    private static void Append(StringBuilder text, IEnumerable<string> lines)
    {
        foreach (var line in lines)
        {
            text.Append(line).Append('\n');
        }
    }

    // "<privileges> to <grantee>" lines as grant statements.
    private static void AppendGrants(StringBuilder text, string? grants, string on)
    {
        if (grants is null)
        {
            return;
        }

        foreach (var line in grants.Split('\n'))
        {
            var at = line.IndexOf(" to ", StringComparison.Ordinal);
            text.Append($"grant {line[..at]} on {on}{line[at..]};\n");
        }
    }

    private static void AppendComment(StringBuilder text, string on, string? comment)
    {
        if (comment is not null)
        {
            text.Append($"comment on {on} is {Literal(comment)};\n");
        }
    }

    private static string Literal(string value) => "'" + value.Replace("'", "''", StringComparison.Ordinal) + "'";

    private static string Ident(string name) =>
        name.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '_') && name.Length > 0 && !char.IsDigit(name[0])
            ? name
            : "\"" + name.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    private static async Task<Dictionary<uint, List<string>>> GroupAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        var grouped = new Dictionary<uint, List<string>>();
        await foreach (var row in QueryAsync(connection, sql, cancellationToken))
        {
            var oid = (uint)row.Values[0]!;
            if (!grouped.TryGetValue(oid, out var lines))
            {
                grouped[oid] = lines = [];
            }

            lines.Add(row.Get(1)!);
        }

        return grouped;
    }

    private sealed record Row(object?[] Values)
    {
        public string? Get(int i) => Values[i] as string;
    }

    private static async IAsyncEnumerable<Row> QueryAsync(
        NpgsqlConnection connection, string sql, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        command.Parameters.Add(new NpgsqlParameter { Value = Schemas.ToArray() });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            var values = new object?[reader.FieldCount];
            for (var i = 0; i < values.Length; i++)
            {
                values[i] = reader.IsDBNull(i) ? null : reader.GetValue(i);
            }

            yield return new Row(values);
        }
    }
}
