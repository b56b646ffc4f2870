{#- One row per event_date partition of the lake, with a fingerprint that changes whenever the
    partition gains a file or the set of excluded users changes (drives incremental builds). -#}
with files as (

    {{ lake_files() }}

),

bot_users as (

    select {{ sorted_values_hash('user_id') }} as bot_list_hash
    from {{ ref('stg_bot_users') }}

),

partitions as (

    select
        cast(regexp_extract(file_name, 'event_date=([0-9]{4}-[0-9]{2}-[0-9]{2})', 1) as date)
            as event_date,
        count(*) as files,
        cast(sum(num_rows) as bigint) as lake_rows
    from files
    group by 1

),

final as (

    select
        partitions.event_date,
        partitions.files,
        partitions.lake_rows,
        concat_ws(':',
            cast(partitions.files as string),
            cast(partitions.lake_rows as string),
            {{ "cast(bot_users.bot_list_hash as string)" if var('exclude_bots')
               else "'bots-included'" }}
        ) as lake_fingerprint
    from partitions
    cross join bot_users

)

select * from final
