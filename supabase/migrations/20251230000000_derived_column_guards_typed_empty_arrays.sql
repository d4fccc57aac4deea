-- The derived-column guards start their list of refused columns as a typed empty array ('{}'::text[]) instead of a
-- bare literal that plpgsql casts from text at run time (plpgsql_check: "target type is different type than source
-- type"). Behaviour is unchanged. Current definitions otherwise as in supabase/schema.sql.

CREATE OR REPLACE FUNCTION hourglass.guard_engagement_clock()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_refused text[] := '{}'::text[];
  v_frequency record;
begin
  if tg_op = 'INSERT' then
    if new.compliance_status <> 'compliant' then v_refused := v_refused || 'compliance_status'::text; end if;
    if new.days_overdue <> 0 then v_refused := v_refused || 'days_overdue'::text; end if;
    if new.priority_score <> 0 then v_refused := v_refused || 'priority_score'::text; end if;
    if new.priority_reason is not null then v_refused := v_refused || 'priority_reason'::text; end if;
    if pg_catalog.cardinality(v_refused) > 0 then
      perform hourglass.refuse_derived_write('engagement_clocks', v_refused, 'is computed by refresh_engagement_compliance',
        'insert the clock without it and call refresh_engagement_compliance(tenant_id)');
    end if;
    -- A frequency given that is not the rule's is the clock's own.
    if new.frequency_override_days is null and new.touch_frequency_days <> 21 then
      select f.days, f.source into v_frequency from hourglass.engagement_frequency(new.tenant_id, new.entity_type, new.entity_id) f;
      if new.touch_frequency_days <> v_frequency.days then
        new.frequency_override_days := new.touch_frequency_days;
      end if;
    end if;
    if new.frequency_override_days is not null then
      new.touch_frequency_days := new.frequency_override_days;
      new.frequency_source := 'clock';
    end if;
    return new;
  end if;

  if new.frequency_source is distinct from old.frequency_source then
    v_refused := v_refused || 'frequency_source'::text;
  end if;
  if new.next_touch_due is distinct from old.next_touch_due then
    v_refused := v_refused || 'next_touch_due'::text;
  end if;
  if pg_catalog.cardinality(v_refused) > 0 then
    perform hourglass.refuse_derived_write('engagement_clocks', v_refused,
      case v_refused[1] when 'frequency_source' then 'says where touch_frequency_days comes from (the clock, a segment, a tier or the tenant)'
                        else 'is derived (the last touch, or the clock''s creation, plus touch_frequency_days)' end,
      'to change how often the clock is due, set frequency_override_days (null follows the rules again); '
      || 'to restart it, record a touch with update_engagement_clock or record_touches (which takes the touch''s occurred_at)');
  end if;

  if new.compliance_status is distinct from old.compliance_status then v_refused := v_refused || 'compliance_status'::text; end if;
  if new.days_overdue is distinct from old.days_overdue then v_refused := v_refused || 'days_overdue'::text; end if;
  if new.priority_score is distinct from old.priority_score then v_refused := v_refused || 'priority_score'::text; end if;
  if new.priority_reason is distinct from old.priority_reason then v_refused := v_refused || 'priority_reason'::text; end if;
  if pg_catalog.cardinality(v_refused) > 0 then
    perform hourglass.refuse_derived_write('engagement_clocks', v_refused,
      'is computed by refresh_engagement_compliance (from next_touch_due, the account''s tier weight and churn risk)',
      'change what it follows (record a touch, set frequency_override_days, the tenant''s tier_weights), then call refresh_engagement_compliance(tenant_id)');
  end if;

  if new.last_touch_at is distinct from old.last_touch_at then v_refused := v_refused || 'last_touch_at'::text; end if;
  if new.last_touch_type is distinct from old.last_touch_type then v_refused := v_refused || 'last_touch_type'::text; end if;
  if new.last_touch_by is distinct from old.last_touch_by then v_refused := v_refused || 'last_touch_by'::text; end if;
  if new.touch_count is distinct from old.touch_count then v_refused := v_refused || 'touch_count'::text; end if;
  if new.recovered_at is distinct from old.recovered_at then v_refused := v_refused || 'recovered_at'::text; end if;
  if new.last_card_id is distinct from old.last_card_id and new.last_card_id is not null then
    v_refused := v_refused || 'last_card_id'::text;
  end if;
  if pg_catalog.cardinality(v_refused) > 0 then
    perform hourglass.refuse_derived_write('engagement_clocks', v_refused, 'is the clock''s touch record, written by a touch',
      'record the touch with update_engagement_clock or record_touches (occurred_at for a touch made earlier)');
  end if;

  -- Honoured: a frequency written on the clock is its override, in force at once.
  if new.touch_frequency_days is distinct from old.touch_frequency_days then
    if new.touch_frequency_days > 366 then
      raise exception using errcode = '22023',
        message = pg_catalog.format('engagement_clocks.touch_frequency_days must be between 1 and 366 days (got %s)', new.touch_frequency_days);
    end if;
    if new.frequency_override_days is distinct from old.frequency_override_days
       and new.frequency_override_days is distinct from new.touch_frequency_days then
      raise exception using errcode = '22023',
        message = pg_catalog.format('engagement_clocks: touch_frequency_days (%s) and frequency_override_days (%s) disagree',
          new.touch_frequency_days, coalesce(new.frequency_override_days::text, 'null')),
        hint = 'set frequency_override_days alone: it is the clock''s own frequency';
    end if;
    new.frequency_override_days := new.touch_frequency_days;
    new.frequency_source := 'clock';
    new.next_touch_due := coalesce(new.last_touch_at, new.created_at) + pg_catalog.make_interval(days => new.touch_frequency_days);
  end if;
  return new;
end
$function$;

CREATE OR REPLACE FUNCTION hourglass.guard_order_queue_entry()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_refused text[] := '{}'::text[];
  v_claim boolean;
  v_reset boolean;
begin
  if tg_op = 'INSERT' then
    if new.status not in ('pending', 'cancelled') then v_refused := v_refused || 'status'::text; end if;
    if new.pricing_status <> 'pending' then v_refused := v_refused || 'pricing_status'::text; end if;
    if new.credit_status <> 'pending' then v_refused := v_refused || 'credit_status'::text; end if;
    if new.requirements_status <> 'pending' then v_refused := v_refused || 'requirements_status'::text; end if;
    if new.auto_fix_attempts <> 0 then v_refused := v_refused || 'auto_fix_attempts'::text; end if;
    if new.validation_results <> '{}'::jsonb then v_refused := v_refused || 'validation_results'::text; end if;
    if new.processed_at is not null then v_refused := v_refused || 'processed_at'::text; end if;
    if new.claimed_by is not null or new.claimed_until is not null or new.claim_token <> 0 then v_refused := v_refused || 'claimed_by'::text; end if;
    if pg_catalog.cardinality(v_refused) > 0 then
      perform hourglass.refuse_derived_write('order_processing_queue', v_refused, 'is written by the order processor',
        'queue an order as pending (or cancelled) and let the processor validate it; an order enters the queue by itself when placed');
    end if;
    return new;
  end if;

  -- A claim as claim_orders makes it: 'processing', a holder, an end, a new token.
  v_claim := new.status = 'processing' and new.claimed_by is not null and new.claimed_until is not null
             and new.claim_token is distinct from old.claim_token;
  v_reset := new.status in ('pending', 'cancelled');

  if new.status is distinct from old.status and not (v_reset or v_claim) then
    perform hourglass.refuse_derived_write('order_processing_queue', array['status'],
      case when new.status = 'processing' then '= ''processing'' is set by claim_orders, with a claim'
           else pg_catalog.format('= %L is the order processor''s verdict', new.status) end,
      'set status = ''pending'' to validate the order again, or ''cancelled'' to withdraw it; an order waiting for approval is '
      || 'released by deciding its approval card; an exception is closed with resolve_order_exception');
  end if;

  if new.pricing_status is distinct from old.pricing_status and not (v_reset and new.pricing_status = 'pending') then
    v_refused := v_refused || 'pricing_status'::text;
  end if;
  if new.credit_status is distinct from old.credit_status and not (v_reset and new.credit_status = 'pending') then
    v_refused := v_refused || 'credit_status'::text;
  end if;
  if new.requirements_status is distinct from old.requirements_status and not (v_reset and new.requirements_status = 'pending') then
    v_refused := v_refused || 'requirements_status'::text;
  end if;
  if new.auto_fix_attempts is distinct from old.auto_fix_attempts and not (v_reset and new.auto_fix_attempts = 0) then
    v_refused := v_refused || 'auto_fix_attempts'::text;
  end if;
  if new.validation_results is distinct from old.validation_results then v_refused := v_refused || 'validation_results'::text; end if;
  if new.processed_at is distinct from old.processed_at then v_refused := v_refused || 'processed_at'::text; end if;
  if not v_claim then
    if new.claim_token is distinct from old.claim_token then v_refused := v_refused || 'claim_token'::text; end if;
    if new.claimed_by is distinct from old.claimed_by and not (v_reset and new.claimed_by is null) then
      v_refused := v_refused || 'claimed_by'::text;
    end if;
    if new.claimed_until is distinct from old.claimed_until and not (v_reset and new.claimed_until is null) then
      v_refused := v_refused || 'claimed_until'::text;
    end if;
  end if;
  if pg_catalog.cardinality(v_refused) > 0 then
    perform hourglass.refuse_derived_write('order_processing_queue', v_refused, 'is the order processor''s finding',
      'set status = ''pending'' to validate the order again (the checks start over); raise max_auto_fix_attempts to allow more fixes');
  end if;

  -- Back in the queue or withdrawn: no processor holds it any more.
  if v_reset and new.status is distinct from old.status then
    new.claimed_by := null;
    new.claimed_until := null;
  end if;
  return new;
end
$function$;

CREATE OR REPLACE FUNCTION hourglass.guard_success_strategy()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_refused text[] := '{}'::text[];
begin
  if tg_op = 'INSERT' then
    if new.effectiveness_score <> 0
       and round(new.effectiveness_score, 4) <> round((new.success_count + 1)::numeric / (new.usage_count + 2), 4) then
      v_refused := v_refused || 'effectiveness_score'::text;
    end if;
    if new.effectiveness_lower <> 0 then v_refused := v_refused || 'effectiveness_lower'::text; end if;
    if pg_catalog.cardinality(v_refused) > 0 then
      perform hourglass.refuse_derived_write('success_strategies', v_refused,
        'is computed from usage_count and success_count by attribute_strategy_outcomes',
        'give the strategy''s history as usage_count and success_count; its score follows from them');
    end if;
    return new;
  end if;

  if new.usage_count is distinct from old.usage_count then v_refused := v_refused || 'usage_count'::text; end if;
  if new.success_count is distinct from old.success_count then v_refused := v_refused || 'success_count'::text; end if;
  if new.effectiveness_score is distinct from old.effectiveness_score then v_refused := v_refused || 'effectiveness_score'::text; end if;
  if new.effectiveness_lower is distinct from old.effectiveness_lower then v_refused := v_refused || 'effectiveness_lower'::text; end if;
  if pg_catalog.cardinality(v_refused) > 0 then
    perform hourglass.refuse_derived_write('success_strategies', v_refused,
      'is counted from judged outcomes (strategy_attributions) by attribute_strategy_outcomes',
      'to start a strategy''s record afresh, add it under a new strategy_key and set is_active = false on this one');
  end if;
  return new;
end
$function$;

CREATE OR REPLACE FUNCTION hourglass.guard_client_pattern()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_refused text[] := '{}'::text[];
begin
  if new.pattern_data is distinct from old.pattern_data then v_refused := v_refused || 'pattern_data'::text; end if;
  if new.confidence is distinct from old.confidence then v_refused := v_refused || 'confidence'::text; end if;
  if new.evidence_count is distinct from old.evidence_count then v_refused := v_refused || 'evidence_count'::text; end if;
  if new.is_active is distinct from old.is_active then v_refused := v_refused || 'is_active'::text; end if;
  if new.first_detected_at is distinct from old.first_detected_at then v_refused := v_refused || 'first_detected_at'::text; end if;
  if new.last_confirmed_at is distinct from old.last_confirmed_at then v_refused := v_refused || 'last_confirmed_at'::text; end if;
  if pg_catalog.cardinality(v_refused) > 0 then
    perform hourglass.refuse_derived_write('client_patterns', v_refused, 'is the insights detectors'' finding from warehouse_events',
      'correct or add the events (ingest_events) and the detectors revise the pattern; delete the row to have it detected afresh');
  end if;
  return new;
end
$function$;
