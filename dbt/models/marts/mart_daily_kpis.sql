{#- One row per UTC day with events: visitors, sessions started, buyers, purchases, revenue. -#}
with activity as (

    select * from {{ ref('int_daily_activity') }}

),

sessions as (

    select * from {{ ref('int_sessions') }}

),

sessions_per_day as (

    select {{ utc_date('session_start') }} as event_date, count(*) as sessions
    from sessions
    group by 1

),

final as (

    select
        activity.event_date,
        activity.unique_visitors,
        coalesce(sessions_per_day.sessions, 0) as sessions,
        activity.buyers,
        activity.purchases,
        activity.revenue_amount as revenue,
        {{ safe_divide('activity.buyers', 'activity.unique_visitors') }} as conversion_rate
    from activity
    left join sessions_per_day using (event_date)

)

select * from final
