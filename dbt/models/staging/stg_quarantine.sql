{#- Rejected rows from the lake's quarantine: why and where from (the raw text stays there). -#}
with source as (

    {% if var("quarantine_glob") %}
    select reason, source, ingest_date, ingested_at
    from read_parquet(
        '{{ var("quarantine_glob") }}',
        hive_partitioning = true,
        hive_types = {'ingest_date': date}
    )
    {% else %}
    select
        null::varchar as reason,
        null::varchar as source,
        null::date as ingest_date,
        null::timestamptz as ingested_at
    where false
    {% endif %}

),

final as (

    select reason, source, ingest_date, ingested_at from source

)

select * from final
