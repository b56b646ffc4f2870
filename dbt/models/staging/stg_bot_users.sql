{#- Users flagged as bots by the stream engine (main.bot_alerts); empty while that table does
    not exist yet (a home that was only ingested). -#}
{%- set bot_alerts = adapter.get_relation(
        database=target.database, schema=target.schema, identifier='bot_alerts') -%}
with source as (

    {% if bot_alerts is not none %}
    select user_id, detected_at, rule from {{ bot_alerts }}
    {% else %}
    select null::bigint as user_id, null::timestamptz as detected_at, null::varchar as rule
    where false
    {% endif %}

),

final as (

    select
        user_id,
        min(detected_at) as first_detected_at,
        count(*) as alerts,
        string_agg(distinct rule, ',' order by rule) as rules
    from source
    where user_id is not null
    group by user_id

)

select * from final
