{#- One row per UTC day, category and brand: the view → cart → purchase funnel in distinct
    users and in events. Built incrementally by event_date partition. -#}
{{ config(materialized='incremental', unique_key='event_date',
          partition_by=event_date_partitions()) }}

with events as (

    {{ changed_partition_events() }}

),

-- one row per cell and user first: distinct users become plain counts
by_user as (

    select
        event_date,
        category_id,
        category_code,
        brand,
        user_id,
        {{ event_counts(['views', 'carts', 'purchases']) }}
    from events
    group by all

),

-- labels can merge raw cells (one category_code under two ids): one row per user again
by_cell_user as (

    select
        event_date,
        {{ category_label('category_code', 'category_id') }} as category,
        coalesce(brand, 'unknown') as brand,
        user_id,
        {{ summed(['views', 'carts', 'purchases', 'revenue_amount']) }}
    from by_user
    group by all

),

steps as (

    select
        event_date,
        category,
        brand,
        count(*) filter (where views > 0) as viewers,
        count(*) filter (where carts > 0) as carters,
        count(*) filter (where purchases > 0) as buyers,
        {{ summed(['views', 'carts', 'purchases', 'revenue_amount']) }}
    from by_cell_user
    group by all

),

final as (

    select
        event_date,
        category,
        brand,
        viewers,
        carters,
        buyers,
        views,
        carts,
        purchases,
        revenue_amount,
        {{ safe_divide('carters', 'viewers') }} as view_to_cart_rate,
        {{ safe_divide('buyers', 'carters') }} as cart_to_purchase_rate,
        {{ safe_divide('buyers', 'viewers') }} as view_to_purchase_rate
    from steps

)

{{ with_lake_fingerprint('final') }}
