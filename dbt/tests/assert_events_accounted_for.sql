-- Every lake event is counted in the marts or in mart_exclusions, never silently dropped.
with lake as (select count(*) as events from {{ ref('stg_events') }}),

counted as (select sum(events) as events from {{ ref('int_daily_activity') }}),

excluded as (

    select coalesce(sum(excluded_rows) filter (where exclusion = 'bot' and excluded), 0) as events
    from {{ ref('mart_exclusions') }}

)

select lake.events as lake_events, counted.events as counted, excluded.events as excluded
from lake, counted, excluded
where lake.events <> counted.events + excluded.events
