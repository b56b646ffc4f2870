{#- One row per kind and reason of data kept out of the marts: quarantined rows (by reason,
    never in the lake's events) and events of bot-flagged users (left out while the var
    exclude_bots is true; `excluded` says whether they were). -#}
with quarantine as (

    select * from {{ ref('stg_quarantine') }}

),

events as (

    select * from {{ ref('stg_events') }}

),

bot_users as (

    select * from {{ ref('stg_bot_users') }}

),

quarantined as (

    select
        'quarantine' as exclusion,
        reason,
        count(*) as excluded_rows,
        cast(null as bigint) as excluded_users,
        true as excluded
    from quarantine
    group by reason

),

bots as (

    select
        'bot' as exclusion,
        'bot_alerts' as reason,
        count(*) as excluded_rows,
        count(distinct user_id) as excluded_users,
        {{ var('exclude_bots') }} as excluded
    from events
    semi join bot_users using (user_id)

),

final as (

    select * from quarantined
    union all
    select * from bots

)

select * from final
