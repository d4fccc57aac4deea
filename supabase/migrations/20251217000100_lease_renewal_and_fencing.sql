-- Leases with fencing tokens on top of agent_tenant_locks. A cycle runs under a lease: it renews the lease
-- while it works, and every write it makes first asserts that its token is still the current one, so a
-- worker that stalled past its lease can never commit after a successor took over.

-- Extends a held lease to now + p_lock_duration_minutes. True when renewed; false when the caller does not
-- hold an unexpired lease with that token (it expired, was released, or belongs to someone else).
create function public.renew_tenant_lock(
  p_tenant_id uuid,
  p_locked_by text,
  p_lock_token bigint,
  p_lock_type text default 'autonomous_cycle',
  p_lock_duration_minutes integer default 30
) returns boolean
language plpgsql volatile set search_path = ''
as $$
declare
  v_now timestamptz;
  v_row_count integer;
begin
  perform hourglass.assert_tenant_access(p_tenant_id, 'renew_tenant_lock');
  if p_locked_by is null or pg_catalog.btrim(p_locked_by) = '' then
    raise exception using errcode = '22023', message = 'renew_tenant_lock: p_locked_by must name the holder (empty given)';
  end if;
  if p_lock_token is null then
    raise exception using errcode = '22004', message = 'renew_tenant_lock: p_lock_token must not be null';
  end if;
  if p_lock_duration_minutes is null or p_lock_duration_minutes <= 0 then
    raise exception using errcode = '22023',
      message = pg_catalog.format('renew_tenant_lock: p_lock_duration_minutes must be > 0 (got %s)', coalesce(p_lock_duration_minutes::text, 'null'));
  end if;

  v_now := hourglass.now();
  -- An expired lease is lost even if nobody has taken it yet: renewing it would let a holder that stalled
  -- past its deadline carry on as if it had not.
  update public.agent_tenant_locks l
  set expires_at = v_now + pg_catalog.make_interval(mins => p_lock_duration_minutes)
  where l.tenant_id = p_tenant_id
    and l.lock_type = coalesce(p_lock_type, 'autonomous_cycle')
    and l.locked_by = p_locked_by
    and l.lock_token = p_lock_token
    and l.expires_at > v_now;
  get diagnostics v_row_count = row_count;
  return v_row_count > 0;
end
$$;

-- Whether p_lock_token is the token of the tenant's current, unexpired lock.
create function public.is_lock_token_current(
  p_tenant_id uuid,
  p_lock_token bigint,
  p_lock_type text default 'autonomous_cycle'
) returns boolean
language plpgsql stable set search_path = ''
as $$
begin
  perform hourglass.assert_tenant_access(p_tenant_id, 'is_lock_token_current');
  return exists (
    select 1 from public.agent_tenant_locks l
    where l.tenant_id = p_tenant_id
      and l.lock_type = coalesce(p_lock_type, 'autonomous_cycle')
      and l.lock_token = p_lock_token
      and l.expires_at > hourglass.now());
end
$$;

-- The fence in front of a cycle's writes: call it first in the transaction that writes. Raises SQLSTATE
-- HG001 unless the token is current. It also takes FOR KEY SHARE on the lock row, which a successor's
-- acquire_tenant_lease must lock to delete the expired row: until this transaction ends no successor can
-- be granted the lease, so no write made under this token commits after a successor's grant. KEY SHARE
-- does not conflict with the non-key UPDATE of renew_tenant_lock, so renewal is never blocked.
create function public.assert_lock_token(
  p_tenant_id uuid,
  p_lock_token bigint,
  p_lock_type text default 'autonomous_cycle'
) returns void
language plpgsql volatile set search_path = ''
as $$
begin
  perform hourglass.assert_tenant_access(p_tenant_id, 'assert_lock_token');
  perform 1 from public.agent_tenant_locks l
  where l.tenant_id = p_tenant_id
    and l.lock_type = coalesce(p_lock_type, 'autonomous_cycle')
    and l.lock_token = p_lock_token
    and l.expires_at > hourglass.now()
  for key share;
  if not found then
    raise exception using errcode = 'HG001',
      message = pg_catalog.format('fencing token %s is no longer current for tenant %s (%s): the lease expired or passed to another worker',
        coalesce(p_lock_token::text, 'null'), p_tenant_id, coalesce(p_lock_type, 'autonomous_cycle'));
  end if;
end
$$;

revoke execute on function public.renew_tenant_lock(uuid, text, bigint, text, integer),
  public.is_lock_token_current(uuid, bigint, text),
  public.assert_lock_token(uuid, bigint, text) from public, anon, authenticated;
grant execute on function public.renew_tenant_lock(uuid, text, bigint, text, integer),
  public.is_lock_token_current(uuid, bigint, text),
  public.assert_lock_token(uuid, bigint, text) to service_role;
