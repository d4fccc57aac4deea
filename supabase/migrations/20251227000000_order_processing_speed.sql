-- Two lookups of the order processor that read more the longer a tenant has been processing orders
-- (docs/orders.md, docs/benchmarks.md "orders").
--
-- Every drain first puts entries whose approval a person has decided back to pending: it looks for entries
-- 'needs_approval', which had no index, so each drain read the whole queue — every order ever placed.
create index idx_order_processing_needs_approval on public.order_processing_queue (tenant_id) where status = 'needs_approval';

-- Every order loaded looks for a decided approval of its release ('order-release/<queue id>'); the only index on
-- the action key (uq_cards_open_approval) covers open approvals, so each order read all of its tenant's decided
-- approval cards.
create index idx_cards_decided_approval on public.cards (tenant_id, (payload ->> 'action_key'))
  where kind = 'approval' and status in ('done', 'dismissed');
