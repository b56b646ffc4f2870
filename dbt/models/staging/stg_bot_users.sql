{#- Users flagged as bots by the stream engine (bot_alerts); empty while there are none yet
    (a home that was only ingested). -#}
with source as (

    {{ bot_alert_rows() }}

),

final as (

    select
        user_id,
        min(detected_at) as first_detected_at,
        count(*) as alerts,
        {{ sorted_distinct_list('rule') }} as rules
    from source
    where user_id is not null
    group by user_id

)

select * from final
