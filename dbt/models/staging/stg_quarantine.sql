{#- Rejected rows from the lake's quarantine: why and where from (the raw text stays there). -#}
with source as (

    {{ quarantine_rows() }}

),

final as (

    select reason, source, ingest_date, ingested_at from source

)

select * from final
