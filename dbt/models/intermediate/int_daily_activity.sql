{#- Per UTC day: visitors, buyers, events by type and revenue. Built incrementally: only
    partitions whose lake fingerprint changed are recomputed. -#}
{{ config(materialized='incremental', unique_key='event_date',
          partition_by=event_date_partitions()) }}

with events as (

    {{ changed_partition_events() }}

),

-- one row per day and user first: distinct counts become plain counts
by_user as (

    select
        event_date,
        user_id,
        count(*) as events,
        {{ event_counts(['views', 'carts', 'purchases']) }}
    from events
    group by event_date, user_id

),

final as (

    select
        event_date,
        count(*) as unique_visitors,
        count(*) filter (where purchases > 0) as buyers,
        {{ summed(['events', 'views', 'carts', 'purchases', 'revenue_amount']) }}
    from by_user
    group by event_date

)

{{ with_lake_fingerprint('final') }}
