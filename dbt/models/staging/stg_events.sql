{#- Clean events from the lake, typed as the lake stores them. Calendar fields come from UTC
    wall-clock time, whatever the session's time zone. -#}
with source as (

    select *
    from read_parquet(
        '{{ var("lake_dir") }}/events/*/*.parquet',
        hive_partitioning = true,
        hive_types = {'event_date': date}
    )

),

renamed as (

    select
        event_time,
        event_date,
        hour(timezone('UTC', event_time))::integer as event_hour,
        isodow(timezone('UTC', event_time))::integer as event_weekday,
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
