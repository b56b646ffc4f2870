{#- The events every mart counts: the lake minus bot-flagged users (var exclude_bots). -#}
{{ config(materialized='view') }}

with events as (

    select * from {{ ref('stg_events') }}

),

bot_users as (

    select user_id from {{ ref('stg_bot_users') }}

),

final as (

    select events.*
    from events
    {% if var('exclude_bots') %}
    anti join bot_users on events.user_id = bot_users.user_id
    {% endif %}

)

select * from final
