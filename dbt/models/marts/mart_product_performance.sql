{#- One row per product: views, carts, purchases, revenue and conversion over the whole lake. -#}
with daily as (

    select * from {{ ref('int_product_daily') }}

),

totals as (

    select
        product_id,
        -- the category and brand the product was last seen with
        {{ value_at_max('category', 'last_event_at') }} as category,
        {{ value_at_max('brand', 'last_event_at') }} as brand,
        min(event_date) as first_seen_date,
        max(event_date) as last_seen_date,
        {{ summed(['views', 'carts', 'removes', 'purchases', 'revenue_amount']) }}
    from daily
    group by product_id

),

final as (

    select
        *,
        {{ safe_divide('purchases', 'views') }} as conversion_rate,
        {{ safe_divide('purchases', 'carts') }} as cart_to_purchase_rate,
        row_number() over (order by revenue_amount desc, purchases desc, product_id)
            as revenue_rank
    from totals

)

select * from final
