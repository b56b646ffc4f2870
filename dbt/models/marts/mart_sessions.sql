{#- One row per session (see int_sessions for the definition). -#}
{{ config(materialized='view') }}

with sessions as (

    select * from {{ ref('int_sessions') }}

),

final as (

    select
        session_id,
        user_session,
        session_seq,
        user_id,
        session_start,
        session_end,
        duration_s,
        events,
        views,
        carts,
        removes,
        purchases,
        revenue_amount,
        has_purchase,
        cart_item_count,
        cart_value_amount,
        is_abandoned
    from sessions

)

select * from final
