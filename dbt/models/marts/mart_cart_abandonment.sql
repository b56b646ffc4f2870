{#- One row per UTC weekday and hour in which sessions ended: carts left behind and their
    value. -#}
with sessions as (

    select * from {{ ref('int_sessions') }}

),

by_slot as (

    select
        isodow(timezone('UTC', session_end))::integer as weekday,
        hour(timezone('UTC', session_end))::integer as hour,
        count(*) as sessions,
        count(*) filter (where carts > 0) as cart_sessions,
        count(*) filter (where is_abandoned) as abandoned_sessions,
        coalesce(sum(cart_value_amount) filter (where is_abandoned), 0)
            as abandoned_value_amount,
        coalesce(sum(cart_item_count) filter (where is_abandoned), 0) as abandoned_items
    from sessions
    group by all

),

final as (

    select
        weekday,
        dayname(date '2024-01-01' + (weekday - 1)::integer) as weekday_name,
        hour,
        sessions,
        cart_sessions,
        abandoned_sessions,
        abandoned_items,
        abandoned_value_amount,
        {{ safe_divide('abandoned_sessions', 'cart_sessions') }} as abandonment_rate,
        {{ safe_divide('abandoned_value_amount', 'abandoned_sessions') }}
            as avg_abandoned_value_amount
    from by_slot

)

select * from final
