-- Sessions started per day in mart_daily_kpis add up to mart_sessions; so do abandoned carts.
with kpis as (select sum(sessions) as sessions from {{ ref('mart_daily_kpis') }}),

sessions as (

    select count(*) as sessions, count(*) filter (where is_abandoned) as abandoned
    from {{ ref('mart_sessions') }}

),

abandonment as (

    select sum(abandoned_sessions) as abandoned from {{ ref('mart_cart_abandonment') }}

)

select *
from kpis, sessions, abandonment
where kpis.sessions <> sessions.sessions or abandonment.abandoned <> sessions.abandoned
