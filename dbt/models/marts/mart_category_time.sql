{#- One row per category and time slot — each UTC hour of day ('hour', 0-23) and each ISO
    weekday ('weekday', 1 = Monday … 7) — ranked within the slot by purchases, then views. -#}
with hourly as (

    select * from {{ ref('int_category_hourly') }}

),

slots as (

    select 'hour' as slot_kind, event_hour as slot, category, views, carts, purchases,
           revenue_amount
    from hourly

    union all

    select 'weekday', event_weekday, category, views, carts, purchases, revenue_amount
    from hourly

),

totals as (

    select
        slot_kind,
        slot,
        category,
        {{ summed(['views', 'carts', 'purchases', 'revenue_amount']) }}
    from slots
    group by all

),

final as (

    select
        *,
        row_number() over (
            partition by slot_kind, slot
            order by purchases desc, views desc, category
        ) as slot_rank
    from totals

)

select * from final
