{#- Clean events from the lake, typed as the lake stores them. Calendar fields come from UTC
    wall-clock time, whatever the session's time zone. -#}
with source as (

    select * from {{ lake_events() }}

),

renamed as (

    select
        event_time,
        event_date,
        {{ utc_hour('event_time') }} as event_hour,
        {{ utc_isodow('event_time') }} as event_weekday,
        event_type,
        product_id,
        category_id,
        category_code,
        {{ category_label('category_code', 'category_id') }} as category,
        brand,
        price,
        user_id,
        user_session
    from source

)

select * from renamed
