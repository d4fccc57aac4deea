using Hourglass.Storage;
using Npgsql;
using NpgsqlTypes;

namespace Hourglass.Tenancy;

/// <summary>What the policies know of a contact or account (see <see cref="TenancyStore.SubjectFactsAsync"/>).</summary>
internal sealed record SubjectFactsRow(Guid Id, string? ContactZone, string? AccountZone, string? Refusal, bool CreditHold, bool Pending,
    DateTimeOffset? LastTouchAt);

/// <summary>A member of a tenant, with what their role may do.</summary>
internal sealed record TenantMemberRow(Guid UserId, string Role, string Capabilities, DateTimeOffset Since);

/// <summary>A tenant's role, its capabilities and how many members hold it.</summary>
internal sealed record TenantRoleRow(string Role, string Capabilities, string Description, long Members);

/// <summary>One place in a tenant's touch queue, with the contact's or account's name.</summary>
internal sealed record NamedQueueEntry(string EntityType, string? Name, string ComplianceStatus, DateTimeOffset NextTouchDue,
    decimal PriorityScore, string PriorityReason);

/// <summary>
/// A touch the engagement queue proposes (<see cref="TenancyStore.TouchCandidatesAsync"/>): the clock's target and its urgency,
/// with the names, tier, segment and time zones of its contact and account.
/// </summary>
internal sealed record TouchCandidateRow(string EntityType, Guid EntityId, Guid? AccountId, Guid? OwnerUserId, string ComplianceStatus, int DaysOverdue,
    DateTimeOffset NextTouchDue, decimal PriorityScore, string Reason, string? Name, string? Tier, string? Segment, string? AccountName,
    string? ContactZone, string? AccountZone);

/// <summary>
/// The only code that names the tenancy tables in SQL: <c>tenants</c>, <c>tenant_members</c>, <c>tenant_roles</c>,
/// <c>accounts</c>, <c>contacts</c>, <c>hourglass.function_capabilities</c> and <c>hourglass.timezones</c>
/// (docs/development.md, "Where SQL goes").
/// </summary>
internal static class TenancyStore
{
    /// <summary>The policies' facts of contacts and accounts (<see cref="SubjectFactsAsync"/>); the benchmarks send it as is.</summary>
    internal const string SubjectFactsSql = """
        select s.id, k.timezone, a.timezone,
               case when k.opted_out_at is not null then 'the contact opted out on ' || to_char(k.opted_out_at at time zone 'UTC', 'YYYY-MM-DD')
                    when k.do_not_contact then 'the contact is marked do-not-contact'
                    when a.do_not_contact then 'the account is marked do-not-contact' end,
               coalesce(a.credit_hold, false),
               exists (select 1 from public.cards o where o.tenant_id = $1 and o.kind in ('touch_task', 'approval') and o.status = 'open'
                         and o.entity_id = s.id)
               or exists (select 1 from public.message_outbox m where m.tenant_id = $1 and m.status in ('pending', 'sending')
                         and (m.payload ->> 'target_id') = s.id::text),
               (select max(c.last_touch_at) from public.engagement_clocks c where c.tenant_id = $1 and c.entity_id = s.id)
        from unnest($2::uuid[]) s(id)
        left join public.contacts k on k.tenant_id = $1 and k.id = s.id
        left join public.accounts a on a.tenant_id = $1 and a.id = coalesce(k.account_id, s.id)
        """;

    /// <summary>
    /// The statement joins the Engagement part's cards, outbox and clocks to the contacts and accounts it returns rows
    /// for, so it lives here, with the rows' owner (docs/development.md, "Where SQL goes").
    /// What the policies need to know of each contact or account in <paramref name="subjects"/>: its own and its
    /// account's time zone, why it may not be contacted, a credit hold, whether a card or message for it is still open,
    /// and its last touch.
    /// </summary>
    public static Task<IReadOnlyList<SubjectFactsRow>> SubjectFactsAsync(NpgsqlDataSource dataSource, Guid tenantId, Guid[] subjects,
        CancellationToken cancellationToken)
    {
        var command = dataSource.CreateCommand(SubjectFactsSql);
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = subjects });
        return StoreReads.ListAsync(command, r => new SubjectFactsRow(r.GetGuid(0), r.IsDBNull(1) ? null : r.GetString(1), r.IsDBNull(2) ? null : r.GetString(2),
            r.IsDBNull(3) ? null : r.GetString(3), r.GetBoolean(4), r.GetBoolean(5), r.IsDBNull(6) ? null : r.GetFieldValue<DateTimeOffset>(6)), cancellationToken);
    }

    /// <summary>
    /// Locks the tenant's row until <paramref name="transaction"/> ends, so writes that number per tenant (policy
    /// versions) queue behind each other; false when the tenant does not exist.
    /// </summary>
    public static async Task<bool> LockTenantAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId,
        CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("select id from public.tenants where id = $1 for update", connection, transaction);
        command.Parameters.Add(new() { Value = tenantId });
        return await command.ExecuteScalarAsync(cancellationToken) is not null;
    }

    /// <summary>The tenants whose id or exact name is <paramref name="idOrName"/>: the id match first, at most two.</summary>
    public static async Task<IReadOnlyList<Guid>> TenantIdsByIdOrNameAsync(NpgsqlDataSource dataSource, string idOrName, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            "select id from public.tenants where id::text = $1 or name = $1 order by (id::text = $1) desc limit 2");
        command.Parameters.Add(new() { Value = idOrName });
        var ids = new List<Guid>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            ids.Add(reader.GetGuid(0));
        }

        return ids;
    }

    /// <summary>A tenant's members by role, then user.</summary>
    public static async Task<IReadOnlyList<TenantMemberRow>> MembersAsync(NpgsqlDataSource dataSource, Guid tenantId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            select m.user_id, m.role, array_to_string(r.capabilities, ', '), m.created_at
            from public.tenant_members m join public.tenant_roles r on r.tenant_id = m.tenant_id and r.role = m.role
            where m.tenant_id = $1 order by m.role, m.user_id
            """);
        command.Parameters.Add(new() { Value = tenantId });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var rows = new List<TenantMemberRow>();
        while (await reader.ReadAsync(cancellationToken))
        {
            rows.Add(new(reader.GetGuid(0), reader.GetString(1), reader.GetString(2), reader.GetFieldValue<DateTimeOffset>(3)));
        }

        return rows;
    }

    /// <summary>A tenant's roles by name, each with how many members hold it.</summary>
    public static async Task<IReadOnlyList<TenantRoleRow>> RolesAsync(NpgsqlDataSource dataSource, Guid tenantId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            select r.role, array_to_string(r.capabilities, ', '), coalesce(r.description, ''),
                   (select count(*) from public.tenant_members m where m.tenant_id = r.tenant_id and m.role = r.role)
            from public.tenant_roles r where r.tenant_id = $1 order by r.role
            """);
        command.Parameters.Add(new() { Value = tenantId });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var rows = new List<TenantRoleRow>();
        while (await reader.ReadAsync(cancellationToken))
        {
            rows.Add(new(reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetInt64(3)));
        }

        return rows;
    }

    /// <summary>
    /// The first <paramref name="top"/> places of <c>engagement_queue</c> (Engagement's function) with each contact's
    /// or account's name, which only this store reads.
    /// </summary>
    public static async Task<IReadOnlyList<NamedQueueEntry>> NamedEngagementQueueAsync(NpgsqlDataSource dataSource, Guid tenantId, int top,
        CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            select q.entity_type, coalesce(k.name, a.name), q.compliance_status, q.next_touch_due, q.priority_score, coalesce(q.priority_reason, '')
            from public.engagement_queue($1, $2) q
            left join public.contacts k on q.entity_type = 'contact' and k.tenant_id = $1 and k.id = q.entity_id
            left join public.accounts a on q.entity_type = 'account' and a.tenant_id = $1 and a.id = q.entity_id
            """);
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = top });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var rows = new List<NamedQueueEntry>();
        while (await reader.ReadAsync(cancellationToken))
        {
            rows.Add(new(reader.GetString(0), reader.IsDBNull(1) ? null : reader.GetString(1), reader.GetString(2),
                reader.GetFieldValue<DateTimeOffset>(3), reader.GetDecimal(4), reader.GetString(5)));
        }

        return rows;
    }

    /// <summary>The tenants the connection's role sees (row-level security alone decides), with the caller's role and capabilities in each.</summary>
    public static Task<string?> TenantsJsonAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, CancellationToken cancellationToken) =>
        StoreReads.JsonAsync(connection, transaction, """
            select coalesce(json_agg(t order by t.name, t.id), '[]')::text from (
              select t.id, t.name, t.timezone, t.created_at,
                     (select m.role from public.tenant_members m where m.tenant_id = t.id and m.user_id = (select auth.uid())) as role,
                     hourglass.current_capabilities(t.id) as capabilities
              from public.tenants t) t
            """, cancellationToken);

    /// <summary>Whether the tenant's row is visible to the connection's role: under RLS another tenant's row does not exist.</summary>
    public static async Task<bool> TenantVisibleAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId,
        CancellationToken cancellationToken) =>
        await StoreReads.ScalarAsync<bool>(connection, transaction, "select exists (select 1 from public.tenants where id = $1)", cancellationToken, tenantId);

    /// <summary>Whether the caller's role in the tenant has <paramref name="capability"/>, the caller's role, and the roles that have it.</summary>
    public static async Task<(bool Has, string? Role, string? Holders)> CapabilityAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction,
        Guid tenantId, string capability, CancellationToken cancellationToken)
    {
        await using var command = StoreReads.Command(connection, transaction, """
            select $2 = any (hourglass.current_capabilities($1)),
                   (select m.role from public.tenant_members m where m.tenant_id = $1 and m.user_id = (select auth.uid())),
                   (select string_agg(r.role, ', ' order by r.role) from public.tenant_roles r where r.tenant_id = $1 and $2 = any (r.capabilities))
            """, tenantId, capability);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return (reader.GetBoolean(0), reader.IsDBNull(1) ? null : reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2));
    }

    /// <summary>The first <paramref name="top"/> places of <c>engagement_queue</c>, each with its contact's or account's name, as JSON.</summary>
    public static Task<string?> NamedEngagementQueueJsonAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId, int top,
        CancellationToken cancellationToken) =>
        StoreReads.JsonAsync(connection, transaction, """
            select coalesce(json_agg(x), '[]')::text from (
              select q.*, coalesce(k.name, a.name) as name
              from public.engagement_queue($1, $2) q
              left join public.contacts k on q.entity_type = 'contact' and k.tenant_id = $1 and k.id = q.entity_id
              left join public.accounts a on q.entity_type = 'account' and a.tenant_id = $1 and a.id = q.entity_id) x
            """, cancellationToken, tenantId, top);

    /// <summary>A tenant's members, each with their role and its capabilities, as JSON.</summary>
    public static Task<string?> MembersJsonAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId, CancellationToken cancellationToken) =>
        StoreReads.JsonAsync(connection, transaction, """
            select coalesce(json_agg(m order by m.role, m.user_id), '[]')::text from (
              select m.user_id, m.role, r.capabilities, m.created_at
              from public.tenant_members m join public.tenant_roles r on r.tenant_id = m.tenant_id and r.role = m.role
              where m.tenant_id = $1) m
            """, cancellationToken, tenantId);

    /// <summary>A tenant's roles, what each may do and how many members hold it, as JSON.</summary>
    public static Task<string?> RolesJsonAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId, CancellationToken cancellationToken) =>
        StoreReads.JsonAsync(connection, transaction, """
            select coalesce(json_agg(r order by r.role), '[]')::text from (
              select role, capabilities, description, (select count(*) from public.tenant_members m where m.tenant_id = r.tenant_id and m.role = r.role) as members
              from public.tenant_roles r where r.tenant_id = $1) r
            """, cancellationToken, tenantId);

    /// <summary>The tenant's IANA time zone, or null when there is no such tenant.</summary>
    public static async Task<string?> TimezoneAsync(NpgsqlDataSource dataSource, Guid tenantId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("select timezone from public.tenants where id = $1");
        command.Parameters.Add(new() { Value = tenantId });
        return await command.ExecuteScalarAsync(cancellationToken) as string;
    }

    /// <summary>Tenants' settings and time zones, <c>$1</c> their ids (the order processor's batch reads it).</summary>
    internal const string TenantSettingsSql = "select t.id, t.settings::text, t.timezone from public.tenants t where t.id = any($1)";

    /// <summary>Whether the contact exists, its email, and why it may not be contacted (opted out, do-not-contact, its account's do-not-contact).</summary>
    public static async Task<(bool Found, string? Email, string? DoNotContactReason)> ContactReachAsync(NpgsqlConnection connection, NpgsqlTransaction transaction,
        Guid tenantId, Guid contactId, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("""
            select c.email,
                   case when c.opted_out_at is not null then 'the contact opted out'
                        when c.do_not_contact then 'the contact is marked do-not-contact'
                        when a.do_not_contact then 'the contact''s account is marked do-not-contact' end
            from public.contacts c left join public.accounts a on a.tenant_id = c.tenant_id and a.id = c.account_id
            where c.tenant_id = $1 and c.id = $2
            """, connection, transaction);
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = contactId });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken)
            ? (true, reader.IsDBNull(0) ? null : reader.GetString(0), reader.IsDBNull(1) ? null : reader.GetString(1))
            : (false, null, null);
    }

    /// <summary>A contact's name, email and its account's owner (a notice card's title and assignee), or null when the tenant has no such contact.</summary>
    public static async Task<(string Name, string? Email, Guid? OwnerUserId)?> ContactForNoticeAsync(NpgsqlConnection connection,
        NpgsqlTransaction transaction, Guid tenantId, Guid contactId, CancellationToken cancellationToken)
    {
        await using var command = StoreReads.Command(connection, transaction, """
            select c.name, c.email, a.owner_user_id
            from public.contacts c left join public.accounts a on a.tenant_id = c.tenant_id and a.id = c.account_id
            where c.tenant_id = $1 and c.id = $2
            """, tenantId, contactId);
        var rows = await StoreReads.ListAsync(command, r => (r.GetString(0), r.IsDBNull(1) ? null : r.GetString(1), r.IsDBNull(2) ? (Guid?)null : r.GetGuid(2)),
            cancellationToken);
        return rows.Count == 0 ? null : rows[0];
    }

    // Seeding and inspection (benchmarks): one method per statement, on the caller's connection and transaction

    /// <summary>
    /// <paramref name="count"/> tenants named <paramref name="prefix"/> and their number (1 … count, zero-padded to
    /// <paramref name="digits"/>); their ids in number order.
    /// </summary>
    public static Task<Guid[]> InsertNumberedTenantsAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string prefix, int count, int digits,
        CancellationToken cancellationToken) =>
        StoreReads.GuidsAsync(connection, transaction, """
            insert into public.tenants (name)
            select $1 || pg_catalog.lpad(g::text, greatest($3, pg_catalog.length(g::text)), '0') from pg_catalog.generate_series(1, $2) g order by g
            returning id
            """, cancellationToken, prefix, count, digits);

    /// <summary>As <see cref="InsertNumberedTenantsAsync"/>, tenant g in zone g of <paramref name="zones"/> (round robin); ids in number order.</summary>
    public static Task<Guid[]> InsertNumberedTenantsInZonesAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string prefix, int count,
        string[] zones, CancellationToken cancellationToken) =>
        StoreReads.GuidsAsync(connection, transaction, """
            insert into public.tenants (name, timezone)
            select $1 || g, ($3::text[])[1 + (g - 1) % pg_catalog.cardinality($3::text[])] from pg_catalog.generate_series(1, $2) g order by g
            returning id
            """, cancellationToken, prefix, count, zones);

    /// <summary>One tenant named <paramref name="name"/>; its id.</summary>
    public static async Task<Guid> InsertTenantAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string name, CancellationToken cancellationToken) =>
        (await StoreReads.GuidsAsync(connection, transaction, "insert into public.tenants (name) values ($1) returning id", cancellationToken, name))[0];

    /// <summary>Makes <paramref name="userId"/> a member of the tenant in <paramref name="role"/>.</summary>
    public static Task<int> InsertMemberAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId, Guid userId, string role,
        CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, transaction, "insert into public.tenant_members (tenant_id, user_id, role) values ($1, $2, $3)",
            cancellationToken, tenantId, userId, role);

    /// <summary><paramref name="perTenant"/> new users in every tenant: the first its owner, the others members.</summary>
    public static Task<int> InsertMembersOfEveryTenantAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, int perTenant,
        CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, transaction, """
            insert into public.tenant_members (tenant_id, user_id, role)
            select t.id, gen_random_uuid(), case when g = 1 then 'owner' else 'member' end
            from public.tenants t cross join pg_catalog.generate_series(1, $1) g
            """, cancellationToken, perTenant);

    /// <summary><paramref name="count"/> accounts of one tenant named <c>account-00001</c> on.</summary>
    public static Task<int> InsertNamedAccountsAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId, int count,
        CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, transaction, """
            insert into public.accounts (tenant_id, name) select $1, pg_catalog.format('account-%s', pg_catalog.lpad(a::text, 5, '0'))
            from generate_series(1, $2) a
            """, cancellationToken, tenantId, count);

    /// <summary>
    /// <paramref name="count"/> contacts of one tenant named <c>contact-000001</c> on, contact c at account <c>1 + c mod accounts</c>
    /// of <see cref="InsertNamedAccountsAsync"/>.
    /// </summary>
    public static Task<int> InsertContactsOfNamedAccountsAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId, int count,
        int accounts, CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, transaction, """
            insert into public.contacts (tenant_id, account_id, name)
            select $1, (select a.id from public.accounts a where a.tenant_id = $1 and a.name = pg_catalog.format('account-%s', pg_catalog.lpad((1 + c % $3)::text, 5, '0'))),
                   pg_catalog.format('contact-%s', pg_catalog.lpad(c::text, 6, '0'))
            from generate_series(1, $2) c
            """, cancellationToken, tenantId, count, accounts);

    /// <summary>
    /// <paramref name="perTenant"/> gold accounts in each tenant with ids computed from <paramref name="key"/>, the tenant's
    /// place in <paramref name="tenants"/> and the account's number (md5 of <c>key-n-a-i</c>, both from 0); 40% in a zone of
    /// <paramref name="zones"/>. For a load with per-row triggers off (replica mode): the ids let the caller skip joins.
    /// </summary>
    public static Task<int> InsertKeyedAccountsAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid[] tenants, int perTenant,
        string[] zones, string key, CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, transaction, """
            insert into public.accounts (id, tenant_id, name, tier, timezone)
            select pg_catalog.md5(pg_catalog.format('%s-%s-a-%s', $4, t.n - 1, a))::uuid, t.id, pg_catalog.format('Account %s', a), 'gold',
                   case when a % 5 < 2 then ($3::text[])[1 + (a * 3) % 7] end
            from unnest($1::uuid[]) with ordinality as t (id, n) cross join generate_series(0, $2 - 1) as a
            """, cancellationToken, tenants, perTenant, zones, key);

    /// <summary>
    /// <paramref name="perTenant"/> contacts in each tenant, ids as <see cref="InsertKeyedAccountsAsync"/>'s (<c>key-n-c-i</c>), contact i at
    /// account i / <paramref name="perAccount"/>; 60% in a zone of <paramref name="zones"/>.
    /// </summary>
    public static Task<int> InsertKeyedContactsAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid[] tenants, int perTenant,
        int perAccount, string[] zones, string key, CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, transaction, """
            insert into public.contacts (id, tenant_id, account_id, name, email, timezone)
            select pg_catalog.md5(pg_catalog.format('%s-%s-c-%s', $5, t.n - 1, c))::uuid, t.id,
                   pg_catalog.md5(pg_catalog.format('%s-%s-a-%s', $5, t.n - 1, c / $3))::uuid,
                   pg_catalog.format('Contact %s', c), pg_catalog.format('c%s@example.com', c),
                   case when c % 5 < 3 then ($4::text[])[1 + c % 7] end
            from unnest($1::uuid[]) with ordinality as t (id, n) cross join generate_series(0, $2 - 1) as c
            """, cancellationToken, tenants, perTenant, perAccount, zones, key);

    /// <summary><paramref name="perTenant"/> gold SMB accounts <c>Account 1</c> on in each tenant.</summary>
    public static Task<int> InsertGoldAccountsAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid[] tenants, int perTenant,
        CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, transaction, """
            insert into public.accounts (tenant_id, name, tier, segment)
            select t.id, pg_catalog.format('Account %s', a), 'gold', 'smb'
            from unnest($1::uuid[]) as t (id) cross join generate_series(1, $2) as a
            """, cancellationToken, tenants, perTenant);

    /// <summary>
    /// Accounts <c>Account 1</c> on in each tenant with tiers (10% strategic, 30% growth), segments (25% enterprise) and 25 owners,
    /// an owner per tenant and account number mod 25; rows interleaved across tenants (account number, then tenant).
    /// </summary>
    public static Task<int> InsertTieredAccountsInterleavedAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid[] tenants, int perTenant,
        CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, transaction, """
            insert into public.accounts (tenant_id, name, tier, segment, owner_user_id)
            select t.id, pg_catalog.format('Account %s', a),
                   case when a % 10 = 0 then 'strategic' when a % 10 in (1, 4, 7) then 'growth' else 'standard' end,
                   case when a % 4 = 0 then 'enterprise' else 'smb' end,
                   pg_catalog.md5(t.id::text || (a % 25)::text)::uuid
            from unnest($1::uuid[]) with ordinality as t (id, n) cross join generate_series(1, $2) as a
            order by a, t.n
            """, cancellationToken, tenants, perTenant);

    /// <summary>
    /// As <see cref="InsertTieredAccountsInterleavedAsync"/>, the 25 owners the same in every tenant and the rows tenant by tenant.
    /// </summary>
    public static Task<int> InsertTieredAccountsAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid[] tenants, int perTenant,
        CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, transaction, """
            insert into public.accounts (tenant_id, name, tier, segment, owner_user_id)
            select t.id, pg_catalog.format('Account %s', a),
                   case when a % 10 = 0 then 'strategic' when a % 10 in (1, 4, 7) then 'growth' else 'standard' end,
                   case when a % 4 = 0 then 'enterprise' else 'smb' end, pg_catalog.md5((a % 25)::text)::uuid
            from unnest($1::uuid[]) with ordinality as t (id, n) cross join generate_series(1, $2) as a
            order by t.n, a
            """, cancellationToken, tenants, perTenant);

    /// <summary>
    /// <paramref name="perAccount"/> contacts <c>&lt;account&gt; person 1</c> on at every account of the tenants, in the order
    /// <paramref name="layout"/> says.
    /// </summary>
    public static Task<int> InsertContactsPerAccountAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid[] tenants, int perAccount,
        ContactLayout layout, CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, transaction, layout switch
        {
            ContactLayout.ByAccountId => """
                insert into public.contacts (tenant_id, account_id, name, email)
                select a.tenant_id, a.id, pg_catalog.format('%s person %s', a.name, c), pg_catalog.format('p%s@example.com', c)
                from public.accounts a cross join generate_series(1, $2) as c
                where a.tenant_id = any ($1)
                order by a.tenant_id, a.id, c
                """,
            ContactLayout.ByAccountName => """
                insert into public.contacts (tenant_id, account_id, name, email)
                select a.tenant_id, a.id, pg_catalog.format('%s person %s', a.name, c), pg_catalog.format('p%s@example.com', c)
                from public.accounts a cross join generate_series(1, $2) as c
                where a.tenant_id = any ($1)
                order by a.tenant_id, a.name, c
                """,
            _ => """
                insert into public.contacts (tenant_id, account_id, name, email)
                select a.tenant_id, a.id, pg_catalog.format('%s person %s', a.name, c), pg_catalog.format('p%s@example.com', c)
                from public.accounts a cross join generate_series(1, $2) as c
                where a.tenant_id = any ($1)
                order by c, a.name, a.tenant_id
                """,
        }, cancellationToken, tenants, perAccount);

    /// <summary>Gives 40% of the tenants' contacts (by a hash of their id) a zone of <paramref name="zones"/>.</summary>
    public static Task<int> SetSomeContactZonesAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid[] tenants, string[] zones,
        CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, transaction, """
            update public.contacts set timezone = ($2::text[])[1 + pg_catalog.abs(pg_catalog.hashtext(id::text)) % 7]
            where tenant_id = any ($1) and pg_catalog.abs(pg_catalog.hashtext(id::text)) % 10 < 4
            """, cancellationToken, tenants, zones);

    /// <summary>Marks 2% of the tenants' contacts (by a hash of their id) do-not-contact.</summary>
    public static Task<int> SetSomeContactsDoNotContactAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid[] tenants,
        CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, transaction, """
            update public.contacts set do_not_contact = true
            where tenant_id = any ($1) and pg_catalog.abs(pg_catalog.hashtext(id::text || 'dnc')) % 50 = 0
            """, cancellationToken, tenants);

    /// <summary>
    /// Records a contact's opt-out from <paramref name="source"/>, once: the first call sets <c>opted_out_at</c> (the database
    /// clock), <c>opted_out_source</c> and <c>do_not_contact</c> (<c>Recorded</c> true); a later one changes nothing and
    /// returns the first opt-out's time (<c>Recorded</c> false). Null when the tenant has no such contact (nothing written).
    /// </summary>
    public static async Task<(DateTimeOffset At, bool Recorded)?> RecordOptOutAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction,
        Guid tenantId, Guid contactId, string source, CancellationToken cancellationToken)
    {
        // The row is locked before it is read, so of two clicks at once exactly one sees it not yet opted out.
        await using var command = new NpgsqlCommand("""
            with before as (select id, opted_out_at, do_not_contact from public.contacts where tenant_id = $1 and id = $2 for update)
            update public.contacts c
            set opted_out_at = coalesce(before.opted_out_at, hourglass.now()),
                opted_out_source = case when before.opted_out_at is null then $3 else c.opted_out_source end,
                do_not_contact = true,
                updated_at = case when before.opted_out_at is null or not before.do_not_contact then now() else c.updated_at end
            from before
            where c.id = before.id
            returning c.opted_out_at, before.opted_out_at is null
            """, connection, transaction);
        command.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = tenantId });
        command.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = contactId });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = source });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken)
            ? (new DateTimeOffset(reader.GetDateTime(0), TimeSpan.Zero), reader.GetBoolean(1))
            : null;
    }

    /// <summary>A tenant's contacts' ids, by name.</summary>
    public static Task<Guid[]> ContactIdsByNameAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId, CancellationToken cancellationToken) =>
        StoreReads.GuidsAsync(connection, transaction, "select id from public.contacts where tenant_id = $1 order by name", cancellationToken, tenantId);

    /// <summary>A tenant's contacts' ids, in id order.</summary>
    public static Task<Guid[]> ContactIdsAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId, CancellationToken cancellationToken) =>
        StoreReads.GuidsAsync(connection, transaction, "select id from public.contacts where tenant_id = $1 order by id", cancellationToken, tenantId);

    /// <summary>A tenant's accounts' ids, by name.</summary>
    public static Task<Guid[]> AccountIdsByNameAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId, CancellationToken cancellationToken) =>
        StoreReads.GuidsAsync(connection, transaction, "select id from public.accounts where tenant_id = $1 order by name", cancellationToken, tenantId);

    /// <summary>
    /// The tenant's zone and each of its contacts that has a zone of its own or its account's (the engine's zones for the
    /// best-time detector): rows (tenant zone, contact id, contact zone); a tenant with no such contact gives one row with nulls.
    /// </summary>
    public static Task<IReadOnlyList<(string TenantZone, Guid? Contact, string? Zone)>> ContactZonesAsync(NpgsqlConnection connection,
        NpgsqlTransaction? transaction, Guid tenantId, CancellationToken cancellationToken) =>
        StoreReads.ListAsync(StoreReads.Command(connection, transaction, """
            select t.timezone, k.id, coalesce(k.timezone, a.timezone)
            from public.tenants t
            left join public.contacts k on k.tenant_id = t.id
            left join public.accounts a on a.tenant_id = k.tenant_id and a.id = k.account_id
            where t.id = $1 and (k.id is null or coalesce(k.timezone, a.timezone) is not null)
            """, tenantId), r => (r.GetString(0), r.IsDBNull(1) ? (Guid?)null : r.GetGuid(1), r.IsDBNull(2) ? null : r.GetString(2)), cancellationToken);

    // Seeding (simulator, demo, benchmarks): bulk loads. Each writes its rows by one binary COPY on the caller's
    // connection, in its transaction; the tables' triggers derive what they derive from an insert.

    /// <summary>A tenant to load: its id, name, IANA time zone and settings (a JSON object).</summary>
    internal sealed record TenantLoad(Guid Id, string Name, string Timezone, string Settings);

    /// <summary>A member to load: who, in which tenant, with which role.</summary>
    internal sealed record MemberLoad(Guid TenantId, Guid UserId, string Role);

    /// <summary>An account to load; what is null is left unset (SQL null), as an insert that does not name the column.</summary>
    internal sealed record AccountLoad(Guid Id, Guid TenantId, string Name, string? Tier = null, string? Segment = null, Guid? OwnerUserId = null,
        decimal? CreditLimit = null, int? PaymentTermsDays = null, string? Timezone = null, bool RequiresPo = false, string? DefaultShipTo = null,
        decimal OpenBalance = 0m);

    /// <summary>A contact to load; what is null is left unset (SQL null).</summary>
    internal sealed record ContactLoad(Guid Id, Guid TenantId, Guid? AccountId, string Name, string? Email = null, string? Phone = null,
        string? Timezone = null);

    /// <summary>How many tenants the database holds.</summary>
    public static async Task<long> TenantCountAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, CancellationToken cancellationToken) =>
        await StoreReads.ScalarAsync<long>(connection, transaction, "select count(*) from public.tenants", cancellationToken);

    /// <summary>Loads tenants (their schedules and roles come from the schema's triggers); returns how many.</summary>
    public static Task<ulong> LoadTenantsAsync(NpgsqlConnection connection, IEnumerable<TenantLoad> tenants, CancellationToken cancellationToken) =>
        BulkCopy.ImportAsync(connection, "copy public.tenants (id, name, timezone, settings) from stdin (format binary)",
            [NpgsqlDbType.Uuid, NpgsqlDbType.Text, NpgsqlDbType.Text, NpgsqlDbType.Jsonb], tenants,
            t => [t.Id, t.Name, t.Timezone, t.Settings], cancellationToken);

    /// <summary>Loads tenant members; returns how many.</summary>
    public static Task<ulong> LoadMembersAsync(NpgsqlConnection connection, IEnumerable<MemberLoad> members, CancellationToken cancellationToken) =>
        BulkCopy.ImportAsync(connection, "copy public.tenant_members (tenant_id, user_id, role) from stdin (format binary)",
            [NpgsqlDbType.Uuid, NpgsqlDbType.Uuid, NpgsqlDbType.Text], members, m => [m.TenantId, m.UserId, m.Role], cancellationToken);

    /// <summary>Loads accounts (each gets its engagement clock from the schema's trigger); returns how many.</summary>
    public static Task<ulong> LoadAccountsAsync(NpgsqlConnection connection, IEnumerable<AccountLoad> accounts, CancellationToken cancellationToken) =>
        BulkCopy.ImportAsync(connection, """
            copy public.accounts (id, tenant_id, name, tier, segment, owner_user_id, credit_limit, payment_terms_days, timezone, requires_po, default_ship_to,
                                  open_balance)
            from stdin (format binary)
            """,
            [NpgsqlDbType.Uuid, NpgsqlDbType.Uuid, NpgsqlDbType.Text, NpgsqlDbType.Text, NpgsqlDbType.Text, NpgsqlDbType.Uuid, NpgsqlDbType.Numeric,
             NpgsqlDbType.Integer, NpgsqlDbType.Text, NpgsqlDbType.Boolean, NpgsqlDbType.Jsonb, NpgsqlDbType.Numeric],
            accounts, a => [a.Id, a.TenantId, a.Name, a.Tier, a.Segment, a.OwnerUserId, a.CreditLimit, a.PaymentTermsDays, a.Timezone, a.RequiresPo,
                a.DefaultShipTo, a.OpenBalance], cancellationToken);

    /// <summary>Loads contacts (each gets its engagement clock from the schema's trigger); returns how many.</summary>
    public static Task<ulong> LoadContactsAsync(NpgsqlConnection connection, IEnumerable<ContactLoad> contacts, CancellationToken cancellationToken) =>
        BulkCopy.ImportAsync(connection, "copy public.contacts (id, tenant_id, account_id, name, email, phone, timezone) from stdin (format binary)",
            [NpgsqlDbType.Uuid, NpgsqlDbType.Uuid, NpgsqlDbType.Uuid, NpgsqlDbType.Text, NpgsqlDbType.Text, NpgsqlDbType.Text, NpgsqlDbType.Text],
            contacts, c => [c.Id, c.TenantId, c.AccountId, c.Name, c.Email, c.Phone, c.Timezone], cancellationToken);

    /// <summary>A tenant's accounts and contacts: how many of each.</summary>
    public static async Task<(long Accounts, long Contacts)> CrmCountsAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid tenantId,
        CancellationToken cancellationToken)
    {
        await using var command = StoreReads.Command(connection, transaction, """
            select (select count(*) from public.accounts where tenant_id = $1), (select count(*) from public.contacts where tenant_id = $1)
            """, tenantId);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return (reader.GetInt64(0), reader.GetInt64(1));
    }

    // The benchmarks' synthetic rows, made in the database (generate_series), one statement each.

    /// <summary>Creates tenants named <c>prefix-first</c> … <c>prefix-last</c> (defaults otherwise); returns their ids.</summary>
    public static async Task<Guid[]> CreateNumberedTenantsAsync(NpgsqlConnection connection, string prefix, int first, int last,
        CancellationToken cancellationToken)
    {
        var rows = await StoreReads.ListAsync(StoreReads.Command(connection, null,
            "insert into public.tenants (name) select pg_catalog.format('%s-%s', $1::text, g) from generate_series($2, $3) g returning id",
            prefix, first, last), r => r.GetGuid(0), cancellationToken);
        return [.. rows];
    }

    /// <summary>Makes <paramref name="perTenant"/> accounts <c>Account n</c> (tier gold, segment smb) in each tenant.</summary>
    public static Task<int> GenerateAccountsAsync(NpgsqlConnection connection, Guid[] tenants, int perTenant, CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, null, """
            insert into public.accounts (tenant_id, name, tier, segment)
            select t.id, pg_catalog.format('Account %s', a), 'gold', 'smb'
            from unnest($1::uuid[]) as t (id) cross join generate_series(1, $2) as a
            """, cancellationToken, tenants, perTenant);

    /// <summary>Makes <paramref name="perAccount"/> contacts <c>(account) person n</c> for every account of the tenants.</summary>
    public static Task<int> GenerateAccountContactsAsync(NpgsqlConnection connection, Guid[] tenants, int perAccount, CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, null, """
            insert into public.contacts (tenant_id, account_id, name, email)
            select a.tenant_id, a.id, pg_catalog.format('%s person %s', a.name, c), pg_catalog.format('p%s@example.com', c)
            from public.accounts a cross join generate_series(1, $2) as c
            where a.tenant_id = any ($1)
            order by a.tenant_id, a.id, c
            """, cancellationToken, tenants, perAccount);

    /// <summary>Makes <paramref name="perTenant"/> contacts <c>person n</c> without an account in each tenant.</summary>
    public static Task<int> GenerateContactsAsync(NpgsqlConnection connection, Guid[] tenants, int perTenant, CancellationToken cancellationToken) =>
        StoreReads.ExecuteAsync(connection, null, """
            insert into public.contacts (tenant_id, name, email)
            select t.id, pg_catalog.format('person %s', c), pg_catalog.format('p%s@example.com', c)
            from unnest($1::uuid[]) with ordinality as t (id, n) cross join generate_series(1, $2) as c
            order by t.n, c
            """, cancellationToken, tenants, perTenant);

    // The parts' reads of contacts and accounts (statements moved from the touch part, the insights engine and the event
    // import's bulk batch).

    /// <summary>
    /// The contacts of <paramref name="contactIds"/> that have a time zone, their own or else their account's (the insights
    /// engine places a contact's events in it).
    /// </summary>
    public static Task<IReadOnlyList<(Guid ContactId, string Zone)>> ContactZonesAsync(NpgsqlDataSource dataSource, Guid tenantId, Guid[] contactIds,
        CancellationToken cancellationToken)
    {
        var command = dataSource.CreateCommand("""
            select k.id, coalesce(k.timezone, a.timezone)
            from public.contacts k
            left join public.accounts a on a.tenant_id = k.tenant_id and a.id = k.account_id
            where k.tenant_id = $1 and k.id = any($2) and coalesce(k.timezone, a.timezone) is not null
            """);
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = contactIds });
        return StoreReads.ListAsync(command, r => (r.GetGuid(0), r.GetString(1)), cancellationToken);
    }

    /// <summary>
    /// Which of the given contacts, accounts and orders exist in the tenant, as ("contact" | "account" | "order", id): the
    /// event import checks every entity a chunk names at once. The statement also reads the Orders part's <c>orders</c>;
    /// it returns the tenant's CRM entities, so it lives here (docs/development.md, "Where SQL goes").
    /// </summary>
    public static async Task<HashSet<(string Type, Guid Id)>> ExistingEntitiesAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid tenantId,
        Guid[] contactIds, Guid[] accountIds, Guid[] orderIds, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("""
            select 'contact', k.id from public.contacts k where k.tenant_id = $1 and k.id = any ($2)
            union all
            select 'account', a.id from public.accounts a where a.tenant_id = $1 and a.id = any ($3)
            union all
            select 'order', o.id from public.orders o where o.tenant_id = $1 and o.id = any ($4)
            """, connection, transaction);
        command.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = tenantId });
        command.Parameters.Add(new NpgsqlParameter<Guid[]> { TypedValue = contactIds });
        command.Parameters.Add(new NpgsqlParameter<Guid[]> { TypedValue = accountIds });
        command.Parameters.Add(new NpgsqlParameter<Guid[]> { TypedValue = orderIds });
        var found = new HashSet<(string, Guid)>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            found.Add((reader.GetString(0), reader.GetGuid(1)));
        }

        return found;
    }

    /// <summary>
    /// The first <paramref name="depth"/> touch candidates (<c>hourglass.touch_candidates</c>, Engagement's function: the
    /// queue's order, skipping clocks that already have an open touch card or approval, or a rejection this week), each
    /// with its contact's or account's name, tier, segment and time zones, most urgent first.
    /// </summary>
    public static Task<IReadOnlyList<TouchCandidateRow>> TouchCandidatesAsync(NpgsqlDataSource dataSource, Guid tenantId, int depth,
        CancellationToken cancellationToken)
    {
        var command = dataSource.CreateCommand(NamedCandidates("hourglass.touch_candidates($1, $2, true)"));
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = depth });
        return StoreReads.ListAsync(command, ReadCandidate, cancellationToken);
    }

    /// <summary>
    /// The clocks to touch ahead of their due date this hour (<c>hourglass.touch_candidates_ahead</c>, Engagement's function
    /// for leveling the wave: docs/engagement.md), named as <see cref="TouchCandidatesAsync"/> names its rows, earliest due
    /// first. <paramref name="capacity"/>: the emails the cap lets through on each day ahead; <paramref name="room"/>: how
    /// many more it lets through now.
    /// </summary>
    public static Task<IReadOnlyList<TouchCandidateRow>> TouchCandidatesAheadAsync(NpgsqlDataSource dataSource, Guid tenantId, int[] capacity, int room,
        CancellationToken cancellationToken)
    {
        var command = dataSource.CreateCommand(NamedCandidates("hourglass.touch_candidates_ahead($1, $2, $3)"));
        command.Parameters.Add(new() { Value = tenantId });
        command.Parameters.Add(new() { Value = capacity });
        command.Parameters.Add(new() { Value = room });
        return StoreReads.ListAsync(command, ReadCandidate, cancellationToken);
    }

    // The candidates a touch-queue function returns, with their contact's or account's name, tier, segment and time zones.
    private static string NamedCandidates(string function) => $"""
        select q.entity_type, q.entity_id, q.account_id, q.owner_user_id, q.compliance_status, q.days_overdue, q.next_touch_due,
               q.priority_score, coalesce(q.priority_reason, q.compliance_status), coalesce(k.name, a.name), a.tier, a.segment, a.name,
               k.timezone, a.timezone
        from {function} q
        left join public.contacts k on q.entity_type = 'contact' and k.tenant_id = $1 and k.id = q.entity_id
        left join public.accounts a on a.tenant_id = $1 and a.id = q.account_id
        order by q.priority_score desc, q.next_touch_due, q.clock_id
        """;

    private static TouchCandidateRow ReadCandidate(NpgsqlDataReader r)
    {
        string? Text(int i) => r.IsDBNull(i) ? null : r.GetString(i);
        return new TouchCandidateRow(r.GetString(0), r.GetGuid(1), r.IsDBNull(2) ? null : r.GetGuid(2), r.IsDBNull(3) ? null : r.GetGuid(3),
            r.GetString(4), r.GetInt32(5), r.GetFieldValue<DateTimeOffset>(6), r.GetDecimal(7), r.GetString(8), Text(9), Text(10), Text(11), Text(12),
            Text(13), Text(14));
    }

    // Members and roles, through the tenant's own functions (the API runs them in the caller's session, the CLI as the
    // person it acts for): each statement's text, run by the caller on its connection.

    /// <summary>Adds member $2 to tenant $1 with role $3, or changes their role; returns the outcome.</summary>
    internal const string SetMemberSql = "select public.set_tenant_member($1, $2, $3)";

    /// <summary>Removes member $2 from tenant $1; true when they were one (a tenant keeps its last owner).</summary>
    internal const string RemoveMemberSql = "select public.remove_tenant_member($1, $2)";

    /// <summary>Defines tenant $1's role $2 by its capabilities $3 (text[]) and description $4; returns the outcome.</summary>
    internal const string SetRoleSql = "select public.set_tenant_role($1, $2, $3, $4)";

    /// <summary>Removes tenant $1's role $2, which no member may hold; true when it existed.</summary>
    internal const string RemoveRoleSql = "select public.remove_tenant_role($1, $2)";
}

/// <summary>How <see cref="TenancyStore.InsertContactsPerAccountAsync"/> lays the contacts out in the table.</summary>
internal enum ContactLayout
{
    /// <summary>Tenant by tenant, account by account (by id).</summary>
    ByAccountId,

    /// <summary>Tenant by tenant, account by account (by name).</summary>
    ByAccountName,

    /// <summary>Interleaved: contact number, then account name, then tenant.</summary>
    Interleaved,
}
