namespace Hourglass.Bench;

/// <summary>
/// The locks benchmark's baseline (docs/development.md, "Where SQL goes": a baseline file): the statements
/// <c>acquire_tenant_lease</c> and <c>release_tenant_lock</c> run, sent as plain SQL without the functions, the bar the
/// functions are measured against. The functions live in SQL (supabase/schema.sql), so there is no store constant to take.
/// </summary>
internal static class LockBaseline
{
    // What acquire_tenant_lease runs after its checks (20251217000000_autonomous_agent_system.sql), with the
    // defaults acquire_tenant_lock passes: lock type 'autonomous_cycle', 30 minutes. Keep in step with it.
    // The function reads hourglass.now() once into a variable; the materialized CTE does the same here.
    internal const string DeleteExpiredSql = """
        delete from public.agent_tenant_locks l
        where (l.tenant_id, l.lock_type) in (
          select e.tenant_id, e.lock_type from public.agent_tenant_locks e
          where e.tenant_id = $1 and e.expires_at <= hourglass.now()
          for update skip locked)
        """;

    internal const string InsertLockSql = """
        with clock as materialized (select hourglass.now() as now)
        insert into public.agent_tenant_locks as l (tenant_id, lock_type, locked_by, locked_at, expires_at, lock_token)
        select $1, 'autonomous_cycle', $2, clock.now, clock.now + pg_catalog.make_interval(mins => 30), 0 from clock
        on conflict (tenant_id, lock_type) do nothing
        """;

    // The function draws the token only when its insert won (IF NOT FOUND). A batch cannot branch, so the
    // row must still carry the placeholder token 0 and our name: a row another holder won is left alone.
    internal const string DrawTokenSql = """
        update public.agent_tenant_locks l
        set lock_token = pg_catalog.nextval('public.agent_tenant_lock_token_seq'::regclass)
        where l.tenant_id = $1 and l.lock_type = 'autonomous_cycle' and l.locked_by = $2 and l.lock_token = 0
        returning l.lock_token
        """;

    internal const string ReleaseSql = "delete from public.agent_tenant_locks l where l.tenant_id = $1 and l.locked_by = $2";
}
