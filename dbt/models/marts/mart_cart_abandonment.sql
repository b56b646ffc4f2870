{#- One row per UTC weekday and hour in which sessions ended: carts left behind and their
    value. -#}
with sessions as (

    select * from {{ ref('int_sessions') }}

),

by_slot as (

    select
        {{ utc_isodow('session_end') }} as weekday,
        {{ utc_hour('session_end') }} as hour,
        count(*) as sessions,
        count(*) filter (where carts > 0) as cart_sessions,
        count(*) filter (where is_abandoned) as abandoned_sessions,
        coalesce({{ exact_sum('cart_value_amount', 'is_abandoned') }}, 0)
            as abandoned_value_amount,
        coalesce(sum(cart_item_count) filter (where is_abandoned), 0) as abandoned_items
    from sessions
    group by all

),

final as (

    select
        weekday,
        case weekday
            when 1 then 'Monday' when 2 then 'Tuesday' when 3 then 'Wednesday'
            when 4 then 'Thursday' when 5 then 'Friday' when 6 then 'Saturday'
            else 'Sunday'
        end as weekday_name,
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
