{#- Per UTC day, product, category and brand (as the events carry them): event counts and
    revenue. Built incrementally by event_date partition. -#}
{{ config(materialized='incremental', unique_key='event_date',
          partition_by=event_date_partitions()) }}

with events as (

    {{ changed_partition_events() }}

),

by_product as (

    select
        event_date,
        product_id,
        category_id,
        category_code,
        brand,
        {{ event_counts() }},
        max(event_time) as last_event_at
    from events
    group by all

),

final as (

    select
        event_date,
        product_id,
        {{ category_label('category_code', 'category_id') }} as category,
        brand,
        {{ summed(['views', 'carts', 'removes', 'purchases', 'revenue_amount']) }},
        max(last_event_at) as last_event_at
    from by_product
    group by all

)

{{ with_lake_fingerprint('final') }}
