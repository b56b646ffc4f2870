{#- Per UTC day, hour and category: event counts and revenue. Built incrementally by
    event_date partition. -#}
{{ config(materialized='incremental', unique_key='event_date',
          partition_by=event_date_partitions()) }}

with events as (

    {{ changed_partition_events() }}

),

by_category as (

    select
        event_date,
        event_hour,
        event_weekday,
        category_id,
        category_code,
        {{ event_counts(['views', 'carts', 'purchases']) }}
    from events
    group by all

),

final as (

    select
        event_date,
        event_hour,
        event_weekday,
        {{ category_label('category_code', 'category_id') }} as category,
        {{ summed(['views', 'carts', 'purchases', 'revenue_amount']) }}
    from by_category
    group by all

)

{{ with_lake_fingerprint('final') }}
