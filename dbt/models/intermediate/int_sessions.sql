{#- One row per session, as the stream engine defines it: a user_session value, split where
    two consecutive events are more than the session timeout apart. Cart at the end: per
    product carts − removes − purchases, floored at 0, valued at the product's last seen price
    in the session. Abandoned = no purchase and something left in the cart. -#}
{%- set timeout_us = var('session_timeout_s') | int * 1000000 -%}

with events as (

    -- grouping by a 64-bit hash is several times faster than by the 36-character id;
    -- the test assert_session_keys_unique proves no two ids share a key
    select
        {{ hash64('user_session') }} as session_key,
        user_session,
        user_id,
        event_time,
        event_type,
        product_id,
        price
    from {{ ref('int_events') }}
    where user_session is not null

),

spans as (

    select session_key
    from events
    group by session_key
    having {{ epoch_us('max(event_time)') }} - {{ epoch_us('min(event_time)') }} > {{ timeout_us }}

),

-- only sessions that span more than the timeout can hold a gap: no window over all events
long_events as (

    select events.*
    from events
    semi join spans using (session_key)

),

long_gaps as (

    select
        *,
        coalesce(
            {{ epoch_us('event_time') }} - {{ epoch_us(
                'lag(event_time) over (partition by session_key order by event_time)'
            ) }} > {{ timeout_us }},
            false
        ) as starts_session
    from long_events

),

long_numbered as (

    select
        session_key,
        user_session,
        user_id,
        event_time,
        event_type,
        product_id,
        price,
        sum(cast(starts_session as integer)) over (
            partition by session_key order by event_time rows unbounded preceding
        ) as session_seq
    from long_gaps

),

numbered as (

    select events.*, 0 as session_seq
    from events
    anti join spans using (session_key)

    union all

    select * from long_numbered

),

sessions as (

    select
        session_key,
        session_seq,
        any_value(user_session) as user_session,
        min(event_time) as session_start,
        max(event_time) as session_end,
        -- the user of the latest event; the largest id on a tie (shared session ids)
        {{ value_at_max('user_id', 'event_time') }} as user_id,
        count(*) as events,
        {{ event_counts() }}
    from numbered
    group by session_key, session_seq

),

-- products carted, removed or bought: most events are views of other products
cart_keys as (

    select distinct session_key, product_id
    from events
    where event_type <> 'view'

),

cart_products as (

    select
        session_key,
        session_seq,
        product_id,
        sum(case event_type when 'cart' then 1 when 'view' then 0 else -1 end) as net_count,
        bool_or(event_type <> 'view') as carted,
        -- last seen price of the product in the session; the highest on a tie
        {{ value_at_max('price', 'event_time') }} as last_price
    from numbered
    semi join cart_keys using (session_key, product_id)
    group by session_key, session_seq, product_id

),

carts as (

    select
        session_key,
        session_seq,
        sum(net_count)::bigint as cart_item_count,
        -- exact decimal sum, as the stream engine: independent of aggregation order
        cast(sum(net_count * cast(last_price as decimal(38, 6))) as double) as cart_value_amount
    from cart_products
    where carted and net_count > 0
    group by session_key, session_seq

),

final as (

    select
        sessions.user_session || '#' || cast(sessions.session_seq as string) as session_id,
        sessions.user_session,
        sessions.session_seq,
        sessions.user_id,
        sessions.session_start,
        sessions.session_end,
        ({{ epoch_us('sessions.session_end') }} - {{ epoch_us('sessions.session_start') }})
            / 1e6 as duration_s,
        sessions.events,
        sessions.views,
        sessions.carts,
        sessions.removes,
        sessions.purchases,
        sessions.revenue_amount,
        sessions.purchases > 0 as has_purchase,
        coalesce(carts.cart_item_count, 0) as cart_item_count,
        coalesce(carts.cart_value_amount, 0) as cart_value_amount,
        sessions.purchases = 0 and coalesce(carts.cart_item_count, 0) > 0 as is_abandoned
    from sessions
    left join carts using (session_key, session_seq)

)

select * from final
