-- Revenue in mart_daily_kpis equals the purchases' revenue of the counted lake events, per day.
with lake as (

    select event_date, coalesce(sum(price) filter (where event_type = 'purchase'), 0) as revenue
    from {{ ref('int_events') }}
    group by event_date

),

mart as (

    select event_date, revenue from {{ ref('mart_daily_kpis') }}

)

select *
from lake
full join mart using (event_date)
where abs(coalesce(lake.revenue, -1) - coalesce(mart.revenue, -2)) > 0.005
