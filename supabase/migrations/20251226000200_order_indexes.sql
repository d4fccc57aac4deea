-- The order processor's two heaviest statements, measured in docs/benchmarks.md ("orders"): claiming across
-- tenants sorted every pending entry (the pending index leads with tenant_id), and each order's credit exposure
-- read every order of its account from the heap. With these two (and the exceptions' close joined on the tenant, in
-- OrderProcessor), 4 processors went from 2,672 to about 4,300 orders/s in the benchmark's what-if.
create index idx_order_processing_pending_all on public.order_processing_queue (priority desc, created_at)
  where status = 'pending';
create index idx_orders_tenant_account_open on public.orders (tenant_id, account_id) include (id, total)
  where status in ('placed', 'validated', 'on_hold');
