{#- One row per event_date partition of the lake, with a fingerprint that changes whenever the
    partition gains a file or the set of excluded users changes (drives incremental builds). -#}
with files as (

    select file_name, num_rows
    from parquet_file_metadata('{{ var("lake_dir") }}/events/*/*.parquet')

),

bot_users as (

    select coalesce(hash(list(user_id order by user_id)), 0) as bot_list_hash
    from {{ ref('stg_bot_users') }}

),

partitions as (

    select
        regexp_extract(file_name, 'event_date=(\d{4}-\d{2}-\d{2})', 1)::date as event_date,
        count(*) as files,
        sum(num_rows)::bigint as lake_rows
    from files
    group by 1

),

final as (

    select
        partitions.event_date,
        partitions.files,
        partitions.lake_rows,
        concat_ws(':', partitions.files, partitions.lake_rows,
            {{ "bot_users.bot_list_hash" if var('exclude_bots') else "'bots-included'" }}
        ) as lake_fingerprint
    from partitions
    cross join bot_users

)

select * from final
